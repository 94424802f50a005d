"""The application factory: routes, middleware and error handlers, and a lifespan that
opens the services (``services.open_services``) and runs the process's upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from auditline import __version__
from auditline.api import api_keys, cleanup, health, logs, search, tenants, wellknown
from auditline.api.errors import install_error_handlers, no_such_websocket
from auditline.api.middleware import EdgeMiddleware
from auditline.config import Settings
from auditline.jobs.upkeep import maintain_partitions
from auditline.services import open_services


def _freeze_startup_objects() -> None:
    """Keep the objects built at start-up out of every later garbage collection.

    The application's long-lived objects (routes, schemas, validators, settings, pools)
    are hundreds of thousands; each full collection traversed them all, pausing the event
    loop for about 60 ms, a dozen times in 16 s at 1,000 writes/s, which alone set the
    p99 latency. Frozen, they are never traversed again (pauses of 3-5 ms; see
    docs/benchmarks/ingest-notes.md).
    """
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            upkeep = asyncio.create_task(maintain_partitions(services.writer, settings))
            _freeze_startup_objects()
            try:
                yield
            finally:
                upkeep.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await upkeep

    app = FastAPI(
        title="Auditline",
        version=__version__,
        summary="Multi-tenant, tamper-evident audit log service",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    # Before logs.router: /api/v1/logs/export must not be taken for /api/v1/logs/{event_id}.
    app.include_router(search.router)
    app.include_router(logs.router)
    app.include_router(cleanup.router)
    app.include_router(tenants.router)
    app.include_router(api_keys.router)
    app.include_router(wellknown.router)
    app.add_api_websocket_route("/{path:path}", no_such_websocket)  # last: nothing else matched
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.ingest.max_body_bytes,
        body_timeout=settings.http.body_timeout_seconds,
    )
    return app
