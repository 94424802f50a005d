"""The application factory: routes, middleware and error handlers, and a lifespan that
opens the services (``services.open_services``) and, unless ``jobs.in_process_worker`` is
off, runs a worker and the scheduler in the process (``tasks.background``)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from auditline import __version__
from auditline.api import api_keys, health, jobs, logs, search, tenants, wellknown
from auditline.api.errors import install_error_handlers, no_such_websocket
from auditline.api.middleware import EdgeMiddleware
from auditline.config import Settings
from auditline.services import open_services
from auditline.tasks import background


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
        async with open_services(settings) as services, AsyncExitStack() as stack:
            app.state.services = services
            if settings.jobs.in_process_worker:
                # Partition upkeep and every other periodic task run on the scheduler.
                await stack.enter_async_context(background(services))
            _freeze_startup_objects()
            yield

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
    app.include_router(tenants.router)
    app.include_router(api_keys.router)
    app.include_router(jobs.router)
    app.include_router(wellknown.router)
    app.add_api_websocket_route("/{path:path}", no_such_websocket)  # last: nothing else matched
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.ingest.max_body_bytes,
        body_timeout=settings.http.body_timeout_seconds,
    )
    return app
