"""A real uvicorn server in the test's event loop, and a WebSocket client for the stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from auditline.app import create_app
from auditline.config import Settings


@dataclass
class Running:
    http: httpx.AsyncClient
    ws_base: str
    app: FastAPI

    def url(self, **params: Any) -> str:
        pairs = []
        for key, value in params.items():
            for v in value if isinstance(value, list) else [value]:
                pairs.append((key, str(v)))
        return f"{self.ws_base}/api/v1/logs/stream" + (f"?{urlencode(pairs)}" if pairs else "")


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Running]:
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on",
        ws_ping_interval=None, ws_per_message_deflate=settings.stream.compress,
    )  # fmt: skip
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield Running(http, f"ws://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        await task


async def next_message(ws: ClientConnection, wait: float = 10) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), wait))
    return message


async def until_ready(ws: ClientConnection) -> tuple[list[dict[str, Any]], str]:
    """The replayed events before ``ready``, and ready's cursor."""
    events = []
    while True:
        message = await next_message(ws)
        if message["type"] == "ready":
            return events, message["cursor"]
        assert message["type"] == "event", message
        events.append(message)


async def events(ws: ClientConnection, n: int, wait: float = 20) -> list[dict[str, Any]]:
    """The next *n* event messages (pings skipped)."""
    out: list[dict[str, Any]] = []
    while len(out) < n:
        message = await next_message(ws, wait)
        if message["type"] == "event":
            out.append(message)
        else:
            assert message["type"] == "ping", message
    return out


async def events_until_lagged(
    ws: ClientConnection, n: int, wait: float = 20
) -> list[dict[str, Any]]:
    """Up to *n* event messages, fewer if the server says the client lagged (it then
    closes; the caller resumes from the last cursor, as a real client would)."""
    out: list[dict[str, Any]] = []
    while len(out) < n:
        message = await next_message(ws, wait)
        if message["type"] == "event":
            out.append(message)
        elif message["type"] == "lagged":
            break
        else:
            assert message["type"] == "ping", message
    return out


async def closed(ws: ClientConnection, wait: float = 10) -> tuple[int, str, list[dict[str, Any]]]:
    """Read until the server closes: (code, reason, the messages before)."""
    seen = []
    try:
        while True:
            seen.append(await next_message(ws, wait))
    except ConnectionClosed as exc:
        if exc.rcvd is None:
            raise AssertionError("closed without a close frame") from exc
        return exc.rcvd.code, exc.rcvd.reason, seen


__all__ = ["Running", "closed", "connect", "events", "next_message", "serve", "until_ready"]
