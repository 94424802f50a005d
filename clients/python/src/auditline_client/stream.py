"""The live stream (``WS /api/v1/logs/stream``) as an iterator that resumes by itself.

The server gives every event a cursor (its ``seq``: gap-free, in commit order) and sends the
cursor to resume from in ``ready``, ``ping`` and ``lagged`` messages; a connection opened with
``since=<cursor>`` gets exactly the matching events after it. So the client keeps one
number, the newest cursor it has seen, and after any close it may resume from (a dropped
connection, a server restart, ``4000`` idle or lifetime, ``4408`` lagged, ``4429`` busy)
connects again with ``since=`` that number and drops anything at or below it. The
application sees every matching event once, in order, across any number of reconnections.

A close that reconnecting cannot help (``4400`` bad filter, ``4401`` credential, ``4403``,
``4404``) raises the same typed error as the HTTP calls (``BadRequest``, ``Unauthorized``,
``Forbidden``, ``NotFound``), with the server's detail. Connections that fail in a row
(without delivering a message) are retried with backoff, ``retries.attempts`` times at
most; then :class:`~auditline_client.errors.NetworkError`.

WebSocket library: ``websockets`` (sync and asyncio clients, protocol-level keepalive pings
that notice a dead connection within ``ping_interval + ping_timeout``; see the README for
why this one). The protocol logic (:class:`_Protocol`) is shared; only the I/O differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Self

import httpx
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from auditline_client import types as api
from auditline_client._http import USER_AGENT, AsyncClosing, Closing, Retries, query
from auditline_client.errors import (
    BadRequest,
    Forbidden,
    NetworkError,
    NotFound,
    ProblemError,
    Unauthorized,
)

log = logging.getLogger("auditline_client")

PATH = "/api/v1/logs/stream"

STREAM_RETRIES = Retries(attempts=10, backoff=0.5, max_delay=30.0)
"""Ten connections in a row may fail (about two minutes of backoff at most) before a stream
gives up; any connection that delivers a message starts the count again."""

RESUME_AT_ONCE = frozenset({4000, 4408})
"""Closes that say where to resume (idle or lifetime, lagged): reconnected at once."""

_REFUSED: dict[int, type[ProblemError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
}
"""Close codes 4400... (and handshake statuses) that no reconnection can help."""


@dataclass(frozen=True)
class StreamEvent:
    """One event of a stream: ``event`` exactly as ``GET /api/v1/logs/{id}`` returns it, and
    its ``cursor`` (its ``seq``), to resume from with ``stream(since=cursor)`` later."""

    cursor: int
    event: api.Event


@dataclass(frozen=True)
class StreamOptions:
    """How a stream connects: the WebSocket options of both implementations."""

    open_timeout: float | None = 10.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float | None = 5.0
    max_size: int | None = 16 * 2**20

    def websocket(self, headers: dict[str, str]) -> dict[str, Any]:
        return {
            "additional_headers": headers,
            "user_agent_header": USER_AGENT,
            "open_timeout": self.open_timeout,
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
            "close_timeout": self.close_timeout,
            "max_size": self.max_size,
        }


class _Protocol:
    """The stream protocol's state and decisions, shared by both streams: where to connect,
    what a message means, how long to wait after a close (or that the stream is over)."""

    def __init__(
        self,
        http: httpx.Client | httpx.AsyncClient,
        tenant: str | None,
        filters: dict[str, Any],
        since: int | None,
        retries: Retries,
    ) -> None:
        self.base = http.base_url
        self.headers = {"Authorization": http.headers["Authorization"]}
        self.params = {**filters, "tenant_id": tenant}
        self.position = since
        self.retries = retries
        self.failures = 0
        self.detail: str | None = None

    def url(self) -> str:
        scheme = "wss" if self.base.scheme == "https" else "ws"
        params = query({**self.params, "since": self.position})
        path = self.base.path.rstrip("/") + PATH
        return str(self.base.copy_with(scheme=scheme, path=path, params=params))

    def read(self, text: str | bytes) -> StreamEvent | None:
        """The event *text* carries when the application has not seen it yet, else None;
        every cursor the server sends moves the resume point."""
        message = json.loads(text)
        kind = message.get("type")
        if kind == "error":
            self.detail = str(message.get("detail") or "")
            return None
        if kind not in ("event", "ready", "ping", "lagged"):
            return None  # a newer server's message: nothing this client must act on
        cursor = int(message["cursor"])
        self.failures = 0  # this connection works
        if self.position is not None and cursor <= self.position:
            return None  # the seam of a resume: sent before
        self.position = cursor
        return StreamEvent(cursor, message["data"]) if kind == "event" else None

    def after_close(self, code: int | None, reason: str, cause: BaseException) -> float:
        """Seconds to wait before connecting again after a close with *code* (None: the
        connection broke or never opened); raises when the stream cannot go on."""
        detail, self.detail = self.detail or reason, None
        if code is not None and code - 4000 in _REFUSED:
            raise _refusal(code - 4000, detail, {"close_code": code}) from None
        self.failures += 1
        if self.failures >= self.retries.attempts:
            what = f"closed with {code}" if code is not None else repr(cause)
            raise NetworkError(
                f"stream: {self.failures} connections in a row failed ({what}: {detail})"
            ) from cause
        wait = 0.0 if code in RESUME_AT_ONCE else self.retries.delay(self.failures)
        log.info(
            "stream: resuming after cursor %s in %.2f s (closed with %s: %s)",
            self.position, wait, code, detail,
            extra={"auditline_stream": {"code": code, "cursor": self.position, "wait": wait}},
        )  # fmt: skip
        return wait

    def after_refusal(self, status: int, cause: BaseException) -> float:
        """The same for a handshake answered with an HTTP *status* instead of an upgrade."""
        if status in _REFUSED:
            raise _refusal(status, f"the server answered the handshake with {status}", {})
        return self.after_close(None, f"handshake answered with {status}", cause)


def _refusal(status: int, detail: str, extra: dict[str, Any]) -> ProblemError:
    problem = {"title": "stream refused", "status": status, "detail": detail, **extra}
    return _REFUSED[status](status, problem, None)


def _close_of(exc: ConnectionClosed) -> tuple[int | None, str]:
    if exc.rcvd is None:
        return None, "the connection broke"
    return exc.rcvd.code, exc.rcvd.reason


class _Following:
    """What both streams hold: the protocol's state and the connection options."""

    def __init__(self, protocol: _Protocol, options: StreamOptions) -> None:
        self._protocol = protocol
        self._options = options

    @property
    def cursor(self) -> int | None:
        """Where the stream would resume: the newest cursor seen (None before ``ready``)."""
        return self._protocol.position


class Stream(_Following, Closing):
    """A live stream of events: iterate it; close it (or leave its ``with`` block) to end.

    Not a thread of its own: events are read as the iterator is advanced, so an application
    that stops reading is eventually told it lagged, and the stream resumes from where it
    was. :meth:`close` may be called from another thread; the iteration then ends.
    """

    def __init__(self, protocol: _Protocol, options: StreamOptions) -> None:
        super().__init__(protocol, options)
        self._ws: ClientConnection | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> StreamEvent:
        while not self._closed.is_set():
            ws = self._ws or self._connect()
            if ws is None:
                continue
            try:
                text = ws.recv()
            except ConnectionClosed as exc:
                self._forget(ws)
                if self._closed.is_set():
                    break
                self._closed.wait(self._protocol.after_close(*_close_of(exc), exc))
                continue
            item = self._protocol.read(text)
            if item is not None:
                return item
        raise StopIteration

    def _connect(self) -> ClientConnection | None:
        protocol = self._protocol
        try:
            # Entered as a context manager, as websockets 17.1 asks; it stays open until
            # close() (which is all its __exit__ does).
            opened = connect(protocol.url(), **self._options.websocket(protocol.headers))
            ws: ClientConnection = opened.__enter__()
        except InvalidStatus as exc:
            wait = protocol.after_refusal(exc.response.status_code, exc)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            wait = protocol.after_close(None, repr(exc), exc)
        else:
            with self._lock:
                if not self._closed.is_set():
                    self._ws = ws
                    return ws
            ws.close()
            return None
        self._closed.wait(wait)
        return None

    def _forget(self, ws: ClientConnection) -> None:
        with self._lock:
            if self._ws is ws:
                self._ws = None

    def close(self) -> None:
        """Close the connection (a normal close, 1000); the iteration ends."""
        self._closed.set()
        with self._lock:
            ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()


class AsyncStream(_Following, AsyncClosing):
    """:class:`Stream` for asyncio: ``async for``, ``async with``, :meth:`aclose`."""

    def __init__(self, protocol: _Protocol, options: StreamOptions) -> None:
        super().__init__(protocol, options)
        self._ws: AsyncConnection | None = None
        self._closed = asyncio.Event()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamEvent:
        while not self._closed.is_set():
            ws = self._ws or await self._connect()
            if ws is None:
                continue
            try:
                text = await ws.recv()
            except ConnectionClosed as exc:
                if self._ws is ws:
                    self._ws = None
                if self._closed.is_set():
                    break
                await self._pause(self._protocol.after_close(*_close_of(exc), exc))
                continue
            item = self._protocol.read(text)
            if item is not None:
                return item
        raise StopAsyncIteration

    async def _connect(self) -> AsyncConnection | None:
        protocol = self._protocol
        try:
            ws = await async_connect(protocol.url(), **self._options.websocket(protocol.headers))
        except InvalidStatus as exc:
            wait = protocol.after_refusal(exc.response.status_code, exc)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            wait = protocol.after_close(None, repr(exc), exc)
        else:
            if self._closed.is_set():
                await ws.close()
                return None
            self._ws = ws
            return ws
        await self._pause(wait)
        return None

    async def _pause(self, seconds: float) -> None:
        """Sleep *seconds*, or less when the stream is closed meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)

    async def aclose(self) -> None:
        """Close the connection (a normal close, 1000); the iteration ends."""
        self._closed.set()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
