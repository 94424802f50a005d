"""The application factory: routes, middleware and error handlers, and a lifespan that
opens the services (``services.open_services``) and, unless ``jobs.in_process_worker`` is
off, runs a worker and the scheduler in the process (``tasks.background``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from auditline import __version__
from auditline.api import (
    api_keys,
    cleanup,
    health,
    integrity,
    jobs,
    logs,
    metrics,
    search,
    stream,
    tenants,
    wellknown,
)
from auditline.api.errors import install_error_handlers, no_such_websocket
from auditline.api.middleware import EdgeMiddleware
from auditline.api.openapi import install_openapi
from auditline.config import Settings
from auditline.metrics import Metrics
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
            await services.streams.hub.start()
            if settings.jobs.in_process_worker:
                # Partition upkeep and every periodic task run on the scheduler; sealing too.
                await stack.enter_async_context(background(services))
            sampling = asyncio.create_task(_sample_metrics(services.metrics))
            watchdog = asyncio.create_task(_stop_with_supervisor())
            _freeze_startup_objects()
            try:
                yield
            finally:
                for task in (sampling, watchdog):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                services.metrics.process_stopped()
                await services.streams.hub.close()

    app = FastAPI(
        title="Auditline",
        version=__version__,
        summary="Multi-tenant, tamper-evident audit log service",
        lifespan=lifespan,
        telemetry=_telemetry(settings.metrics.opentelemetry),
    )
    install_error_handlers(app)
    # Routes are tried in order: ingest's first, as the one almost every request takes (its
    # event id is a UUID, so /api/v1/logs/export or /stream is never taken for one).
    app.include_router(logs.router)
    app.include_router(health.router)
    app.include_router(search.router)
    app.include_router(stream.router)
    stream.redact_access_tokens(logging.getLogger("uvicorn.error"))  # handshakes are logged
    app.include_router(integrity.router)
    app.include_router(cleanup.router)
    app.include_router(tenants.router)
    app.include_router(api_keys.router)
    app.include_router(jobs.router)
    app.include_router(wellknown.router)
    app.include_router(metrics.router)
    app.add_api_websocket_route("/{path:path}", no_such_websocket)  # last: nothing else matched
    install_openapi(app, settings.ingest)
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.ingest.max_body_bytes,
        body_timeout=settings.http.body_timeout_seconds,
        request_log=settings.metrics.request_log,
    )
    return app


SUPERVISOR_ENV = "AUDITLINE_SUPERVISOR_PID"


async def _stop_with_supervisor(interval: float = 0.5) -> None:
    """In an API process that ``auditline serve --workers N`` started: stop when serve dies.

    uvicorn's worker processes outlive a supervisor killed with SIGKILL; they would keep
    serving (and holding database connections) beside the next ``auditline serve`` on the
    same data dir. Each checks its parent and shuts down gracefully once it has changed.
    """
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or os.getpid() == int(supervisor):
        return
    while os.getppid() == int(supervisor):  # noqa: ASYNC110 - no event says a parent died
        await asyncio.sleep(interval)
    os.kill(os.getpid(), signal.SIGTERM)


async def _sample_metrics(metrics: Metrics, interval: float = 1.0) -> None:
    """Keep this process's sampled gauges (pools) fresh: with several API processes a
    scrape is answered by one of them, which reads the others' last samples."""
    while True:
        metrics.sample_now()
        await asyncio.sleep(interval)


def _telemetry(enabled: bool) -> TelemetryConfig:
    """FastAPI's own OpenTelemetry: it asks on every request whether a tracer, meter or
    logger provider is configured, even when none is (2.3 % of an ingest request's API CPU
    in a py-spy profile, docs/benchmarks/ingest-notes.md); Prometheus metrics and the JSON
    request log are this service's own, so it is off unless asked for."""
    return {"tracing": enabled, "metrics": enabled, "logs": enabled}
