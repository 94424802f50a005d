"""The one ASGI layer every HTTP request passes through.

It gives each request an id, bounds its body in size (413) and in time (408), puts the
request id and the RateLimit header fields on every response, counts the request in the
metrics (by route template and status) and writes its one structured log line. One
plain-ASGI layer rather than six: this sits on the ingest hot path, where each wrapper cost
a closure call per message, and it never buffers or copies a body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auditline.api.problems import PROBLEM_JSON, type_uri
from auditline.metrics import UNMATCHED, Metrics
from auditline.security.ratelimit import header_fields

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_log = logging.getLogger("auditline.requests")
"""One JSON document per request (``metrics.request_log``); see docs/operations.md."""


class EdgeMiddleware:
    """Request ids, body limits and response header fields.

    * **Request id**: the caller's ``X-Request-ID`` if it is sane, else a new one; kept in
      the request state (errors and access records carry it) and echoed on the response.
    * **Body size**: a declared ``Content-Length`` over *max_body_bytes* is refused at once;
      a chunked body is counted as it streams and cut off as soon as it passes the limit.
    * **Body deadline**: the whole body must arrive within *body_timeout* seconds of the
      first read. uvicorn bounds idle keep-alive connections but not a body trickled in a
      byte at a time, which would otherwise hold a task and a buffer for as long as the
      client likes.
    * **RateLimit fields**: for the buckets the request was charged to (left in the request
      state by ``api.deps.get_principal``), on successes, errors and streams alike.
    * **Metrics and the request log**: once the response has been sent (or the request has
      failed), its count and duration by route template and status, and one JSON log line
      with the request id, tenant, principal, route, status and duration. The metrics come
      from the application's services, so they exist from the lifespan's start on.

    The 413 and 408 are raised as ``HTTPException`` while FastAPI reads the body, which it
    passes through to the problem+json handlers.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout: float,
        request_log: bool = True,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.request_log = request_log
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._children_of: Metrics | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped every handler
        try:
            status = await self._handle(scope, receive, send)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> int:
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._reject_too_large(send, request_id)
            return 413
        status = 500

        received = 0
        deadline: float | None = None
        complete = False

        async def guarded_receive() -> Message:
            nonlocal received, deadline, complete
            if complete:  # after the body: waiting for a disconnect is not bounded here
                return await receive()
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self.body_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408, f"The request body did not arrive within {self.body_timeout:g} s."
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413, self._too_large())
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        async def send_with_fields(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out = message.setdefault("headers", [])
                out.append((b"x-request-id", request_id.encode()))
                for name, value in header_fields(state.get("ratelimit") or []):
                    out.append((name.lower().encode(), value.encode()))
            await send(message)

        await self.app(scope, guarded_receive, send_with_fields)
        return status

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        state = scope.get("state") or {}
        route = scope.get("route")
        template: str = getattr(route, "path_format", None) or UNMATCHED
        app = scope.get("app")
        services = getattr(getattr(app, "state", None), "services", None)
        metrics: Metrics | None = getattr(services, "metrics", None)
        if metrics is not None:
            if metrics is not self._children_of:  # a new lifespan, new metrics
                self._children, self._children_of = {}, metrics
            key = (scope["method"], template, status)
            children = self._children.get(key)
            if children is None:  # labels() hashes and locks: once per key, not per request
                children = (
                    metrics.requests.labels(scope["method"], template, str(status)),
                    metrics.request_seconds.labels(scope["method"], template),
                )
                self._children[key] = children
            children[0].inc()
            children[1].observe(seconds)
        if self.request_log and request_log.isEnabledFor(logging.INFO):
            principal = state.get("principal")
            request_log.info(
                orjson.dumps(
                    {
                        "request_id": state.get("request_id"),
                        "method": scope["method"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                        "tenant": state.get("tenant"),
                        "principal": getattr(principal, "identity", None),
                    }
                ).decode()
            )

    def _too_large(self) -> str:
        return f"The request body exceeds {self.max_body_bytes} bytes; nothing was stored."

    async def _reject_too_large(self, send: Send, request_id: str) -> None:
        body = json.dumps(
            {
                "type": type_uri("too-large"),
                "title": "Payload too large",
                "status": 413,
                "detail": self._too_large(),
                "request_id": request_id,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
