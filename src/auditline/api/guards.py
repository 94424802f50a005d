"""ASGI guards: RateLimit header fields on every response, and a deadline for request bodies.

Plain ASGI (like ``api.middleware``): neither buffers nor copies bodies.
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auditline.security.ratelimit import header_fields


class RateLimitHeadersMiddleware:
    """Adds ``RateLimit-Policy`` and ``RateLimit`` for the buckets the request was charged to.

    The decisions are left in the request state by ``api.deps.get_principal``; success,
    errors and streamed responses all pass through here, so they all carry the fields.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                fields = header_fields(state.get("ratelimit") or [])
                if fields:
                    headers = message.setdefault("headers", [])
                    headers.extend((k.lower().encode(), v.encode()) for k, v in fields)
            await send(message)

        await self.app(scope, receive, send_with_limits)


class BodyTimeoutMiddleware:
    """A request body must arrive completely within *timeout* seconds of the first read (408).

    uvicorn bounds idle keep-alive connections but not a body trickled in a byte at a time;
    without a deadline such requests would hold a task, a buffer and possibly a database
    connection each for as long as the client likes.
    """

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline: float | None = None
        complete = False

        async def timed_receive() -> Message:
            nonlocal deadline, complete
            if complete:  # after the body: waiting for a disconnect is not bounded here
                return await receive()
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.timeout
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                # Raised while FastAPI reads the body, so it reaches the problem+json handlers.
                raise HTTPException(
                    408, f"The request body did not arrive within {self.timeout:g} s."
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, timed_receive, send)
