"""Typed exceptions. Every error response of the API is RFC 9457 problem+json; the client
turns it into the subclass of :class:`ProblemError` for its status, carrying the problem's
fields and, for validation, the pointers to every offending field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, cast

import httpx

from auditline_client.types import FieldProblem


class AuditlineError(Exception):
    """Base of every error this package raises."""


class NetworkError(AuditlineError):
    """No answer from the server, after the retries the call allowed.

    For a create the outcome is unknown: send the same event again (same ``id``); the
    server stores it at most once. The underlying ``httpx`` error is ``__cause__``.
    """


class ProblemError(AuditlineError):
    """An error answer from the server (``application/problem+json``)."""

    def __init__(self, status: int, problem: dict[str, Any], retry_after: float | None) -> None:
        self.status = status
        self.problem = problem
        self.type: str = str(problem.get("type", "about:blank"))
        self.title: str = str(problem.get("title", ""))
        self.detail: str = str(problem.get("detail", ""))
        self.instance: str | None = problem.get("instance")
        self.request_id: str | None = problem.get("request_id")
        self.errors: list[FieldProblem] = list(problem.get("errors") or [])
        self.retry_after = retry_after
        super().__init__(f"{status} {self.title}: {self.detail}")

    @property
    def pointers(self) -> list[str]:
        """Where the problems are: JSON Pointers into the body, names of query parameters."""
        return [e.get("pointer", e.get("parameter", "")) for e in self.errors]


class BadRequest(ProblemError):
    """400: a malformed query (``q``), a tampered cursor, a body that is not JSON."""


class Unauthorized(ProblemError):
    """401: the credential is missing, malformed, expired or not trusted."""


class Forbidden(ProblemError):
    """403: the role or the key's scope does not allow this on the caller's tenant."""


class NotFound(ProblemError):
    """404: no such resource, or a tenant the credential does not grant (the server does
    not tell the two apart)."""


class Conflict(ProblemError):
    """409: the tenant exists already; a cleanup under legal hold; a proof not sealed yet."""


class NotSealed(Conflict):
    """409 ``not-sealed``: no checkpoint covers the event (or the log has none) yet; logs
    are sealed about every second, and ``retry_after`` says when to ask again."""


class PayloadTooLarge(ProblemError):
    """413: the body is over the server's limit."""


class ValidationFailed(ProblemError):
    """422: the request breaks the rules; nothing was stored. ``errors`` says where
    (``index`` names the event of a bulk request)."""


class RateLimited(ProblemError):
    """429: still rate limited after the retries; ``retry_after`` says for how long."""


class Unavailable(ProblemError):
    """503: the database is away or the server too busy to start a read; retried by the
    client, raised when the retries are spent."""


class ServerError(ProblemError):
    """Any other 5xx (a request id in ``request_id`` identifies it in the server's logs)."""


class VerificationError(AuditlineError):
    """What the server sent does not prove what it claims: the answer is not to be trusted.

    Raised by the proof verification calls, never for a network or HTTP failure (those
    stay :class:`NetworkError` and :class:`ProblemError`)."""


class UntrustedCheckpoint(VerificationError):
    """A checkpoint without a valid signature by the pinned key (a wrong key, a forged or
    altered note), malformed, or of another log than the one asked about."""


class AlteredEvent(VerificationError):
    """The event is not what the log committed to at its position: its fields do not hash
    to its leaf, or its inclusion proof does not lead to the signed root. A row changed in
    the database after the event was sealed ends here."""


class InconsistentLog(VerificationError):
    """The log does not extend a checkpoint the application trusted: it is smaller (rolled
    back), or its history up to that checkpoint differs (forked, rewritten)."""


_BY_TYPE: dict[str, type[ProblemError]] = {
    "https://auditline.dev/problems/not-sealed": NotSealed,
}

_BY_STATUS: dict[int, type[ProblemError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: Unavailable,
}


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` of *response* in seconds (delta-seconds; an HTTP date is read
    too, as RFC 9110 allows), or None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def problem_error(response: httpx.Response) -> ProblemError:
    """The exception for an error *response* whose body has been read."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):  # a proxy's HTML page, say: keep what it said
        body = {"title": response.reason_phrase, "detail": response.text[:500]}
    cls = _BY_TYPE.get(str(body.get("type"))) or _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else ProblemError
    return cls(response.status_code, cast(dict[str, Any], body), retry_after(response))
