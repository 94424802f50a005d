"""Every error leaves as ``application/problem+json`` (RFC 9457).

Validation problems carry an ``errors`` list whose entries point at the offending value
with a JSON Pointer (RFC 6901) into the request body, or name the query parameter.
Unexpected failures carry the request id and nothing about the internals.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from auditline.admission import Overloaded
from auditline.api.deps import record_denial
from auditline.api.problems import PROBLEM_JSON, PROBLEM_TYPES, ProblemKind, http_kind, type_uri
from auditline.domain.events import FieldError, InvalidEvents
from auditline.domain.masking_settings import InvalidSettings
from auditline.domain.retention import LegalHold, TooRecent
from auditline.domain.tenants import TenantExists, UnknownTenant
from auditline.domain.validation import InvalidInput
from auditline.evidence.proofs import InvalidRange, NotSealed, UnknownEvent
from auditline.ingest.writer import WriterClosed
from auditline.search.backend import SearchUnavailable
from auditline.search.cursor import InvalidCursor
from auditline.search.model import InvalidSearch
from auditline.search.query import ParseError
from auditline.security.api_keys import ApiKeyLimitReached
from auditline.security.principal import Forbidden, InvalidClaims, TenantNotFound, TenantRequired
from auditline.security.ratelimit import RateLimited
from auditline.security.tokens import InvalidToken
from auditline.storage.database import ReadTimedOut

log = logging.getLogger(__name__)


def problem(
    kind: ProblemKind,
    title: str,
    detail: str,
    *,
    request: Request | None = None,
    headers: Mapping[str, str] | None = None,
    status: int | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem of type *kind*, with the status ``api.problems`` gives that type (*status*
    only for ``http-error``, which is any status)."""
    status = status if status is not None else PROBLEM_TYPES[kind].status
    body: dict[str, Any] = {
        "type": type_uri(kind),
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    if request is not None:
        body["instance"] = request.url.path
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            body["request_id"] = request_id
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def no_such_websocket(websocket: WebSocket) -> None:
    """An upgrade to a path with no WebSocket route: the same 404 problem a request gets.

    Registered after every route. Without it the upgrade would be refused with a bare 403
    (Starlette's default), or, were no WebSocket library installed, taken for a plain GET
    and matched against the HTTP routes.
    """
    response = problem("http-404", "Not Found", "Not Found", instance=websocket.url.path)
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:  # pragma: no cover - every server we run supports denial responses
        await websocket.close()


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method the request's path has, for the ``Allow`` of a 405.

    The router names only the methods of the first route whose path matched, and FastAPI
    makes a route per method: ``OPTIONS /api/v1/logs`` was told ``GET`` although the
    path takes ``POST`` too. So each method is tried on the path, through the routes' own
    matching (included routers hold their routes without the prefix), in a scope of its
    own (matching writes to the scope).
    """
    allowed = []
    for method in _METHODS:
        for route in request.app.router.routes:
            probe = {
                "type": "http", "method": method, "path": request.url.path,
                "root_path": request.scope.get("root_path", ""), "headers": [],
                "query_string": b"",
            }  # fmt: skip
            if route.matches(probe)[0] is Match.FULL:
                allowed.append(method)
                break
    return ", ".join(allowed)


def pointer(path: Iterable[str | int]) -> str:
    """RFC 6901 JSON Pointer for *path*."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def field_errors(errors: Sequence[FieldError], *, prefix: tuple[str | int, ...] = ()) -> list[Any]:
    out = []
    for error in errors:
        path = (*prefix, *error.path)
        entry: dict[str, Any] = {"pointer": pointer(path), "detail": error.message}
        if len(path) >= 2 and path[0] == "events" and isinstance(path[1], int):
            entry["index"] = path[1]
        out.append(entry)
    return out


def _validation_entries(exc: RequestValidationError) -> list[Any]:
    entries = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        where = loc.pop(0) if loc else "body"
        # Pydantic adds the union/discriminator member name to loc; those are not fields.
        loc = [p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "[")))]
        entry: dict[str, Any] = {"detail": error.get("msg", "invalid")}
        if where == "body":
            entry["pointer"] = pointer(loc)
            if len(loc) >= 2 and loc[0] == "events" and isinstance(loc[1], int):
                entry["index"] = loc[1]
        else:
            entry["parameter"] = ".".join(str(p) for p in loc) or str(where)
            entry["in"] = where
        entries.append(entry)
    return entries


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(
            "validation", "Invalid request",
            "The request does not match the schema; nothing was stored.",
            request=request, errors=_validation_entries(exc),
        )  # fmt: skip

    @app.exception_handler(InvalidEvents)
    async def on_invalid_events(request: Request, exc: InvalidEvents) -> JSONResponse:
        prefix: tuple[str | int, ...] = ("events",) if request.url.path.endswith("/bulk") else ()
        return problem(
            "validation", "Invalid events",
            "One or more events break the ingest rules; nothing was stored.",
            request=request, errors=field_errors(exc.errors, prefix=prefix),
        )  # fmt: skip

    @app.exception_handler(InvalidSettings)
    async def on_invalid_settings(request: Request, exc: InvalidSettings) -> JSONResponse:
        return problem(
            "validation", "Invalid settings",
            "The tenant settings break the rules; nothing was changed.",
            request=request, errors=field_errors(exc.errors),
        )  # fmt: skip

    @app.exception_handler(InvalidInput)
    async def on_invalid_input(request: Request, exc: InvalidInput) -> JSONResponse:
        return problem(
            "validation", "Invalid request",
            "The request breaks the input rules; nothing was changed.",
            request=request, errors=field_errors(exc.errors),
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            exc.headers = {**(exc.headers or {}), "Allow": allowed_methods(request)}
        return problem(
            http_kind(exc.status_code), _title(exc.status_code), str(exc.detail),
            request=request, headers=exc.headers, status=exc.status_code,
        )  # fmt: skip

    @app.exception_handler(InvalidToken)
    @app.exception_handler(InvalidClaims)
    async def on_unauthenticated(request: Request, exc: Exception) -> JSONResponse:
        return problem(
            "unauthenticated", "Unauthenticated", str(exc), request=request,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )  # fmt: skip

    @app.exception_handler(TenantNotFound)
    @app.exception_handler(UnknownTenant)
    async def on_tenant_not_found(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, TenantNotFound):  # not granted (UnknownTenant: granted, absent)
            await record_denial(request, exc)
        return problem(
            "tenant-not-found", "Tenant not found",
            f"tenant '{exc.args[0]}' not found" if exc.args else "", request=request,
        )  # fmt: skip

    @app.exception_handler(TenantRequired)
    async def on_tenant_required(request: Request, exc: TenantRequired) -> JSONResponse:
        return problem(
            "tenant-required", "Tenant required", str(exc), request=request,
            errors=[{"parameter": "tenant_id", "detail": "required for this token"}],
        )  # fmt: skip

    @app.exception_handler(Forbidden)
    async def on_forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        await record_denial(request, exc)
        return problem("forbidden", "Forbidden", str(exc), request=request)

    @app.exception_handler(RateLimited)
    async def on_rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
        # The RateLimit-* fields are added by api.middleware.EdgeMiddleware from request state.
        return problem(
            "rate-limited", "Too many requests",
            f"Rate limit exceeded; retry in {exc.retry_after} s. Nothing was applied.",
            request=request, headers={"Retry-After": str(exc.retry_after)},
        )  # fmt: skip

    @app.exception_handler(ParseError)
    async def on_query_syntax(request: Request, exc: ParseError) -> JSONResponse:
        return problem(
            "query-syntax", "Invalid query", f"{exc.message} (at position {exc.position})",
            request=request,
            errors=[{"parameter": "q", "in": "query", "position": exc.position,
                     "detail": exc.message}],
        )  # fmt: skip

    @app.exception_handler(NotSealed)
    async def on_not_sealed(request: Request, exc: NotSealed) -> JSONResponse:
        # The sealer runs about once per interval: by then the checkpoint covers it.
        interval = request.app.state.services.settings.integrity.seal_interval_seconds
        return problem(
            "not-sealed", "Not sealed yet", str(exc), request=request,
            headers={"Retry-After": str(max(1, math.ceil(interval)))},
        )  # fmt: skip

    @app.exception_handler(UnknownEvent)
    async def on_unknown_event(request: Request, exc: UnknownEvent) -> JSONResponse:
        return problem("not-found", "Not Found", f"event {exc} not found", request=request)

    @app.exception_handler(InvalidRange)
    async def on_invalid_range(request: Request, exc: InvalidRange) -> JSONResponse:
        return problem(
            "invalid-range", "Invalid range", str(exc), request=request,
            errors=[{"parameter": "from", "in": "query", "detail": str(exc)}],
        )  # fmt: skip

    @app.exception_handler(InvalidCursor)
    async def on_bad_cursor(request: Request, exc: InvalidCursor) -> JSONResponse:
        return problem(
            "invalid-cursor", "Invalid cursor", str(exc), request=request,
            errors=[{"parameter": "cursor", "in": "query", "detail": str(exc)}],
        )  # fmt: skip

    @app.exception_handler(InvalidSearch)
    async def on_bad_search(request: Request, exc: InvalidSearch) -> JSONResponse:
        return problem(
            "invalid-search", "Invalid search", exc.message, request=request,
            errors=[{"parameter": exc.parameter, "in": "query", "detail": exc.message}],
        )  # fmt: skip

    @app.exception_handler(ApiKeyLimitReached)
    async def on_key_limit(request: Request, exc: ApiKeyLimitReached) -> JSONResponse:
        return problem(
            "api-key-limit", "API key limit reached",
            f"the tenant already has {exc.args[0]} active API keys", request=request,
        )  # fmt: skip

    @app.exception_handler(TenantExists)
    async def on_conflict(request: Request, exc: TenantExists) -> JSONResponse:
        return problem(
            "tenant-exists", "Tenant exists", f"tenant '{exc.args[0]}' already exists",
            request=request,
        )  # fmt: skip

    @app.exception_handler(LegalHold)
    async def on_legal_hold(request: Request, exc: LegalHold) -> JSONResponse:
        return problem(
            "legal-hold", "Legal hold",
            f"{exc} (clear `legal_hold` in the tenant's settings first); nothing was removed.",
            request=request,
        )  # fmt: skip

    @app.exception_handler(TooRecent)
    async def on_too_recent(request: Request, exc: TooRecent) -> JSONResponse:
        return problem(
            "validation", "Too recent", f"{exc}; nothing was removed.",
            request=request, errors=[{"parameter": "before", "in": "query", "detail": str(exc)}],
        )  # fmt: skip

    @app.exception_handler(psycopg.DataError)
    async def on_unstorable_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # The last line of defence for a value the edge let through but PostgreSQL cannot
        # hold: the transaction failed, so nothing changed. The edge should have refused it
        # with a pointer (a bug to fix), so the database's own words, which quote values and
        # name its types, stay in the server's log under the request id the client gets.
        reason = (exc.diag.message_primary or str(exc)).splitlines()[0]
        log.warning(
            "request %s: the database refused a value the edge accepted: %s",
            getattr(request.state, "request_id", None), reason,
        )  # fmt: skip
        return problem(
            "validation", "Invalid value",
            "A value in the request cannot be stored; nothing was stored. "
            "Quote the request id when reporting this.", request=request,
        )  # fmt: skip

    @app.exception_handler(Overloaded)
    async def on_overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        what = {"heavy": "exports and statistics", "export": "exports"}.get(exc.kind, "reads")
        return problem(
            "overloaded", "Too many reads at once",
            f"The server is running as many {what} as it admits; this one was not started "
            f"and nothing was recorded. Retry in {exc.retry_after} s.",
            request=request, headers={"Retry-After": str(exc.retry_after)},
        )  # fmt: skip

    @app.exception_handler(ReadTimedOut)
    async def on_read_timeout(request: Request, exc: ReadTimedOut) -> JSONResponse:
        services = getattr(request.app.state, "services", None)
        if services is not None:
            services.metrics.reads_timed_out.inc()
        retry = services.settings.reads.retry_after_seconds if services is not None else 1
        return problem(
            "read-timeout", "Read timed out",
            f"{exc} and was cancelled; nothing was returned. Narrow the query (a shorter "
            "time range, more filters), or retry later if the server is busy.",
            request=request, headers={"Retry-After": str(retry)},
        )  # fmt: skip

    @app.exception_handler(SearchUnavailable)
    async def on_search_unavailable(request: Request, exc: SearchUnavailable) -> JSONResponse:
        log.warning("search backend unavailable: %s", exc)
        services = getattr(request.app.state, "services", None)
        retry = services.settings.search.retry_after_seconds if services is not None else 5
        return problem(
            "search-unavailable", "Search unavailable",
            "The search index cannot answer now and this server is configured not to ask "
            "PostgreSQL instead; nothing was returned or recorded. Retry later.",
            request=request, headers={"Retry-After": str(retry)},
        )  # fmt: skip

    @app.exception_handler(WriterClosed)  # shutting down: another process can take it
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def on_database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return problem(
            "unavailable", "Service unavailable",
            "The database is unavailable. The request may or may not have been applied; "
            "retry it (writes with the same event id are idempotent).",
            request=request, headers={"Retry-After": "1"},
        )  # fmt: skip

    @app.exception_handler(ClientDisconnect)
    async def on_client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client hung up before its body arrived: nothing was read, stored or
        # acknowledged, and nobody is left to answer. 499, nginx's "client closed request",
        # in the request log and the metrics; not an error of ours.
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            "internal", "Internal error", "The request failed; nothing was acknowledged.",
            request=request,
        )  # fmt: skip


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
