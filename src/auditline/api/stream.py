"""``WS /api/v1/logs/stream``: a tenant's events, live, resumable (docs/api.md).

The handler authenticates (header, ``access_token`` query parameter, or a first ``auth``
message), validates the same filters and ``q`` as ``GET /api/v1/logs``, authorizes as a
search does, and hands the rest to ``stream.service``: open (subscribe, record), replay
after ``since``, then live events from the hub. Failures before the stream starts close
the connection with an application close code and a reason (4400, 4401, 4403, 4404,
4429); every close a client should resume from says where (``lagged``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from typing import Any, Final

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import Field, ValidationError
from starlette.websockets import WebSocketState

from auditline.api.deps import authenticate, charge
from auditline.api.schemas import EventOut
from auditline.api.search_schemas import SearchParams
from auditline.domain.access import Actor
from auditline.domain.events import StoredEvent
from auditline.domain.tenants import UnknownTenant
from auditline.search.model import SearchQuery
from auditline.search.query import ParseError, parse
from auditline.security.audit import RequestInfo
from auditline.security.principal import (
    Forbidden,
    Permission,
    Principal,
    TenantNotFound,
    TenantRequired,
)
from auditline.security.ratelimit import RateLimited
from auditline.security.tokens import InvalidToken
from auditline.services import Services
from auditline.stream.hub import Subscription, TooManyStreams
from auditline.stream.service import CursorAhead

router = APIRouter(prefix="/api/v1/logs", tags=["search"])
log = logging.getLogger(__name__)

BAD_REQUEST: Final = 4400
UNAUTHENTICATED: Final = 4401
FORBIDDEN: Final = 4403
NOT_FOUND: Final = 4404
LAGGED: Final = 4408
TOO_MANY: Final = 4429
INTERNAL: Final = 1011
RESUME: Final = 4000
"""Idle or at its maximum lifetime: reconnect with ``since=`` the last cursor."""

_REPEATABLE: Final = frozenset({"action", "severity"})


_ACCESS_TOKEN = re.compile(r"(access_token=)[^&\s\"']+")


class RedactAccessTokens(logging.Filter):
    """Keep ``access_token=`` values out of the server's logs: uvicorn logs each WebSocket
    handshake with its query string (``"WebSocket /api/v1/logs/stream?access_token=..."
    [accepted]``), and a browser's token can travel nowhere else."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "access_token=" in record.msg:
            record.msg = _ACCESS_TOKEN.sub(r"\1[REDACTED]", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _ACCESS_TOKEN.sub(r"\1[REDACTED]", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


def redact_access_tokens(logger: logging.Logger) -> None:
    """Install :class:`RedactAccessTokens` on *logger* (once)."""
    if not any(isinstance(f, RedactAccessTokens) for f in logger.filters):
        logger.addFilter(RedactAccessTokens())


class StreamParams(SearchParams):
    since: int | None = Field(
        default=None, ge=-1, description="Replay stored events after this cursor (-1: all)"
    )
    access_token: str | None = Field(default=None, description="For clients without headers")


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _message(kind: str, **fields: Any) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


def _event_message(stored: StoredEvent) -> str:
    data = EventOut.of(stored).model_dump(mode="json")
    return _message("event", cursor=str(stored.seq), data=data)


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes (RFC 6455)."""
    encoded = text.encode()
    return text if len(encoded) <= 123 else encoded[:120].decode(errors="ignore") + "..."


@router.websocket("/stream")
async def stream_logs(websocket: WebSocket) -> None:
    """Live events of one tenant, filtered like a search; see docs/api.md for the protocol."""
    await websocket.accept()
    connection = _Connection(websocket, websocket.app.state.services)
    try:
        await connection.run()
    except _Close as close:
        if close.code in (LAGGED, RESUME):  # those said where to resume instead
            await connection.close(close.code, close.reason)
        else:
            await connection.fail(close.code, close.reason)
    except WebSocketDisconnect:
        pass
    except UnknownTenant:
        await connection.fail(NOT_FOUND, "tenant not found")
    except Exception:
        log.exception("stream failed (request %s)", connection.info.request_id)
        await connection.fail(INTERNAL, f"internal error (request {connection.info.request_id})")


class _Connection:
    def __init__(self, websocket: WebSocket, services: Services) -> None:
        self.ws = websocket
        self.services = services
        self.settings = services.settings.stream
        self.info = RequestInfo(
            method="GET", path=websocket.url.path,
            client=websocket.client.host if websocket.client else None,
            user_agent=websocket.headers.get("user-agent"), request_id=uuid.uuid4().hex,
        )  # fmt: skip
        self.credential: str | None = None
        self.principal: Principal | None = None
        self.sending_since: float | None = None

    async def send(self, text: str) -> None:
        # No timer per message (tens of thousands a second): _watchdog looks at the clock.
        self.sending_since = time.monotonic()
        await self.ws.send_text(text)
        self.sending_since = None

    async def _watchdog(self) -> None:
        """End the connection when one message has waited ``send_timeout_seconds`` for a
        client that stopped reading (the bounded queue has long overflowed by then)."""
        limit = self.settings.send_timeout_seconds
        while True:
            await asyncio.sleep(limit / 4)
            since = self.sending_since
            if since is not None and time.monotonic() - since > limit:
                raise WebSocketDisconnect(1006, "the client stopped reading")

    async def fail(self, code: int, detail: str) -> None:
        """An ``error`` message, then the close with the same code and reason."""
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.send(_message("error", code=code, detail=detail))
        await self.close(code, detail)

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(code, _reason(reason))

    async def run(self) -> None:
        principal, expires = await self._authenticate()
        self.principal = principal
        params = self._params()
        try:
            tenant = principal.authorize(params.tenant_id, Permission.READ_LOGS)
        except (Forbidden, TenantNotFound) as exc:
            await self.services.security.audit.authorization_failed(principal, exc, self.info)
            code = FORBIDDEN if isinstance(exc, Forbidden) else NOT_FOUND
            raise _Close(code, str(exc) or "tenant not found") from None
        except TenantRequired as exc:
            raise _Close(BAD_REQUEST, str(exc)) from None
        try:
            q = parse(params.q) if params.q is not None else None
        except ParseError as exc:
            raise _Close(BAD_REQUEST, f"q: {exc}") from None
        query = SearchQuery(
            filters=params.filters(), q=q, include_access=params.include_access,
            only_user=principal.subject if principal.own_events_only else None,
        )  # fmt: skip
        actor = Actor(principal.subject, principal.actor_type, self.info.request_id)
        streams = self.services.streams
        try:
            sub = await streams.open(tenant, query, actor, since=params.since)
        except TooManyStreams:
            raise _Close(TOO_MANY, "too many streams for this tenant; retry later") from None
        except CursorAhead as exc:
            raise _Close(BAD_REQUEST, str(exc)) from None
        try:
            await self._serve(sub, params.since, expires)
        finally:
            streams.close(sub)

    async def _authenticate(self) -> tuple[Principal, float | None]:
        credential = None
        header = self.ws.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            credential = value.strip() if scheme.lower() == "bearer" else None
        credential = credential or self.ws.query_params.get("access_token")
        if credential is None:
            credential = await self._auth_message()
        self.credential = credential
        try:
            principal, expires = await authenticate(self.services, credential, lambda: self.info)
            await charge(self.services, principal, "read", self.ws.query_params.get("tenant_id"))
        except InvalidToken as exc:
            raise _Close(UNAUTHENTICATED, str(exc) or "not authenticated") from None
        except RateLimited:
            raise _Close(TOO_MANY, "rate limited; retry later") from None
        return principal, expires

    async def _recheck(self) -> None:
        """The credential again: a revoked API key (or one its issuer withdrew) ends the
        stream, as it would refuse the next request."""
        try:
            again, _ = await self.services.security.authenticator.authenticate_until(
                self.credential or ""
            )
        except InvalidToken as exc:
            raise _Close(UNAUTHENTICATED, f"credential no longer valid: {exc}") from None
        if again != self.principal:
            raise _Close(UNAUTHENTICATED, "credential changed; connect again")

    async def _auth_message(self) -> str | None:
        """The token of a first ``{"type": "auth", "token": ...}`` message, if one comes
        in time (browsers cannot set headers on a WebSocket)."""
        try:
            text = await asyncio.wait_for(
                self.ws.receive_text(), self.settings.auth_timeout_seconds
            )
            message = orjson.loads(text)
        except TimeoutError:
            return None
        except (orjson.JSONDecodeError, KeyError, RuntimeError):
            raise _Close(UNAUTHENTICATED, "the first message must be an auth message") from None
        if not isinstance(message, dict) or message.get("type") != "auth":
            raise _Close(UNAUTHENTICATED, "the first message must be an auth message")
        token = message.get("token")
        if not isinstance(token, str) or not token:
            raise _Close(UNAUTHENTICATED, "the first message must be an auth message")
        return token

    def _params(self) -> StreamParams:
        raw: dict[str, Any] = {}
        for name in self.ws.query_params:
            values = self.ws.query_params.getlist(name)
            raw[name] = values if name in _REPEATABLE else values[-1]
        try:
            return StreamParams.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise _Close(BAD_REQUEST, f"{where}: {first['msg']}") from None

    async def _serve(self, sub: Subscription, since: int | None, expires: float | None) -> None:
        last = sub.after
        if since is not None:
            async for stored in self.services.streams.replay(sub, since):
                await self.send(_event_message(stored))
                last = stored.seq
            last = sub.after
        await self.send(_message("ready", cursor=str(last)))
        receiver = asyncio.create_task(self._receive())
        sender = asyncio.create_task(self._live(sub, last, expires))
        watchdog = asyncio.create_task(self._watchdog())
        tasks = {receiver, sender, watchdog}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                    await task
        for task in done:
            task.result()  # a _Close from the sender goes up to the handler

    async def _receive(self) -> None:
        """Read (and ignore) what the client sends, so a disconnect is seen at once."""
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return

    async def _live(self, sub: Subscription, last: int, expires: float | None) -> None:
        s = self.settings
        now = time.monotonic()
        ends = now + s.max_lifetime_seconds
        expiry = None if expires is None else now + (expires - time.time())
        idle_until = now + s.idle_timeout_seconds
        next_ping = now + s.ping_seconds
        recheck = now + s.recheck_seconds
        while True:
            if sub.lagged.is_set():
                await self.send(_message("lagged", cursor=str(last)))
                raise _Close(LAGGED, "too slow: resume with since=<cursor>")
            now = time.monotonic()
            if expiry is not None and now >= expiry:
                raise _Close(UNAUTHENTICATED, "the token expired")
            if now >= ends:
                raise _Close(RESUME, "maximum lifetime reached: resume with since=<cursor>")
            if now >= idle_until:
                raise _Close(RESUME, "idle: resume with since=<cursor>")
            if now >= next_ping:
                await self.send(_message("ping", cursor=str(last)))
                next_ping = now + s.ping_seconds
            if now >= recheck:
                await self._recheck()
                recheck = now + s.recheck_seconds
            try:
                delivery = sub.queue.get_nowait()  # the common case under load: no waiting
            except asyncio.QueueEmpty:
                wait = min(next_ping, ends, idle_until, recheck, expiry or ends) - now
                try:
                    async with asyncio.timeout(max(wait, 0.001)):
                        delivery = await sub.queue.get()
                except TimeoutError:
                    continue
            if delivery.seq <= last:
                continue
            await self.send(delivery.text(_event_message))
            last = delivery.seq
            idle_until = time.monotonic() + s.idle_timeout_seconds
