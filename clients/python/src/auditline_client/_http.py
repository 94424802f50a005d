"""What the sync and async clients share: the description of a call, its encoding, and the
retry decisions. Only the sending (and sleeping) differs between the two clients."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from uuid import UUID

import httpx

from auditline_client._version import __version__
from auditline_client.errors import NetworkError, ProblemError, problem_error, retry_after

log = logging.getLogger("auditline_client")

T = TypeVar("T")
Params = list[tuple[str, str | int | float | bool | None]]

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
"""Every request has a deadline unless the caller removes it: 5 s to connect, 10 s for each
read, write and pool wait (an export's read timeout is the gap between two chunks)."""

USER_AGENT = f"auditline-client-python/{__version__}"


@dataclass(frozen=True)
class Retries:
    """When and how long to wait before sending a request again.

    A call is sent again after a 429 or a 503 (waiting what the server's ``Retry-After``
    says) and after a network failure, with exponential backoff and full jitter otherwise,
    at most ``attempts`` times in all. A ``Retry-After`` longer than ``max_delay`` is not
    waited for: the error is raised at once, and the caller decides.

    Creates are safe to send again because the client gives every event its id; calls that
    are not idempotent (creating a tenant or an API key) are sent again only when the server
    cannot have acted on them: a 429, or a connection that was never made.
    """

    attempts: int = 4
    backoff: float = 0.5
    max_delay: float = 30.0
    statuses: frozenset[int] = frozenset({429, 503})

    def wait_after(
        self, attempt: int, outcome: httpx.Response | httpx.TransportError, *, idempotent: bool
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None: *outcome* is final."""
        if attempt >= self.attempts:
            return None
        if isinstance(outcome, httpx.TransportError):
            unsent = isinstance(outcome, httpx.ConnectError | httpx.ConnectTimeout)
            return self.delay(attempt) if idempotent or unsent else None
        if outcome.status_code not in self.statuses:
            return None
        if not idempotent and outcome.status_code != 429:
            return None  # a 503 to a write: it may have been done
        asked = retry_after(outcome)
        if asked is None:
            return self.delay(attempt)
        return asked if asked <= self.max_delay else None

    def delay(self, attempt: int) -> float:
        """The backoff after failed attempt number *attempt*: exponential, full jitter."""
        return random.uniform(0, min(self.max_delay, self.backoff * 2 ** (attempt - 1)))  # noqa: S311


NO_RETRIES = Retries(attempts=1)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: the request, how to read its answer, whether it is safe to repeat.

    ``tenant`` is the tenant the call names; None lets the client's default tenant apply
    when the call is ``scoped`` to a tenant at all.
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Params = field(default_factory=list)
    body: bytes | None = None
    idempotent: bool = True
    scoped: bool = True
    tenant: str | None = None

    def request(
        self, http: httpx.Client | httpx.AsyncClient, default_tenant: str | None
    ) -> httpx.Request:
        params = list(self.params)
        tenant = self.tenant or (default_tenant if self.scoped else None)
        if tenant is not None:
            params.append(("tenant_id", tenant))
        headers = {"Content-Type": "application/json"} if self.body is not None else None
        return http.build_request(
            self.method, self.path, params=params, content=self.body, headers=headers
        )


class Attempts:
    """The retry loop's bookkeeping, shared by both clients: they send, then ask how long
    to wait before sending again."""

    def __init__(self, retries: Retries, call: Call[Any]) -> None:
        self.retries, self.call, self.attempt = retries, call, 1

    def after_error(self, error: httpx.TransportError) -> float:
        """The wait before sending again after a network failure; raises
        :class:`NetworkError` when the call may not be sent again."""
        wait = self._wait(error)
        if wait is None:
            raise NetworkError(
                f"{self.call.method} {self.call.path}: {error!r} (after {self.attempt} attempt(s))"
            ) from error
        return wait

    def after_response(self, response: httpx.Response) -> float | None:
        """The wait before sending again, or None: *response* is the answer."""
        return self._wait(response)

    def _wait(self, outcome: httpx.Response | httpx.TransportError) -> float | None:
        wait = self.retries.wait_after(self.attempt, outcome, idempotent=self.call.idempotent)
        if wait is not None:
            what = outcome.status_code if isinstance(outcome, httpx.Response) else repr(outcome)
            log.info(
                "retrying %s %s after %s in %.2f s (attempt %d of %d)",
                self.call.method, self.call.path, what, wait, self.attempt + 1,
                self.retries.attempts,
                extra={"auditline_retry": {"outcome": what, "wait": wait}},
            )  # fmt: skip
            self.attempt += 1
        return wait


class Patience:
    """How long a call waits for the server to be ready for it (an event to be sealed):
    :meth:`wait_after` gives the next pause, honouring ``Retry-After``, until *seconds*
    have passed; then it raises the error."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def wait_after(self, error: ProblemError) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise error
        return min(left, error.retry_after if error.retry_after is not None else 1.0)


class Closing:
    """``with`` support for what has a ``close()``: closed on the way out, error or not."""

    def close(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClosing:
    """``async with`` support for what has an ``aclose()``: closed on the way out."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def finish(call: Call[T], response: httpx.Response) -> T:
    """The call's result from its final, fully read *response*, or its typed error."""
    if response.is_error:
        raise problem_error(response)
    return call.parse(response)


def json_body(response: httpx.Response) -> Any:
    return json.loads(response.content)


def text_body(response: httpx.Response) -> str:
    return response.text


def no_body(response: httpx.Response) -> None:
    return None


def _encode(value: object) -> str:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return instant(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(document: object) -> bytes:
    """JSON for the API: UUIDs and aware datetimes as text, nothing that is not JSON."""
    return json.dumps(
        document, default=_encode, ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode()


def instant(value: datetime) -> str:
    """RFC 3339 text for an aware *value*; a naive one is refused here, as the server would."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a datetime without a timezone is ambiguous: give it one")
    return value.isoformat()


def query(params: Mapping[str, object]) -> Params:
    """Query parameters from keyword arguments: None left out, sequences repeated, booleans
    and datetimes spelt as the API reads them."""
    out: Params = []
    for name, value in params.items():
        values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        for item in values:
            if item is None:
                continue
            if isinstance(item, bool):
                out.append((name, "true" if item else "false"))
            elif isinstance(item, datetime):
                out.append((name, instant(item)))
            else:
                out.append((name, str(item)))
    return out


def client_options(
    base_url: str, token: str, timeout: httpx.Timeout | float | None
) -> dict[str, Any]:
    """The ``httpx`` client options both clients start from."""
    return {
        "base_url": base_url,
        "headers": {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
        "timeout": timeout,
    }
