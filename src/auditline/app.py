"""The application factory. The lifespan owns every resource: no module-level pools."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from auditline import __version__
from auditline.api import api_keys, health, logs, search, tenants, wellknown
from auditline.api.deps import Services
from auditline.api.errors import install_error_handlers
from auditline.api.middleware import EdgeMiddleware
from auditline.config import Settings
from auditline.ingest.access import AccessRecorder
from auditline.ingest.writer import EventWriter, months_from
from auditline.runtime import database, signing_key
from auditline.search.postgres import postgres_search_service
from auditline.search.reader import EventReader
from auditline.security.service import build_security
from auditline.storage.database import open_pool
from auditline.storage.migrations import migrate
from auditline.storage.rls import require_row_level_security

log = logging.getLogger(__name__)


async def ensure_partitions_ahead(writer: EventWriter, settings: Settings) -> None:
    """Partitions for last month through ``partition_months_ahead`` months from now."""
    start = datetime.now(UTC) - timedelta(days=31)
    await writer.ensure_partitions(months_from(start, settings.database.partition_months_ahead + 2))


async def _maintenance(writer: EventWriter, settings: Settings) -> None:
    """Periodic upkeep until cancelled. Failures are logged and retried next round."""
    while True:
        await asyncio.sleep(settings.maintenance_interval_seconds)
        try:
            await ensure_partitions_ahead(writer, settings)
        except Exception:
            log.exception("partition maintenance failed; retrying next round")


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
        with database(settings) as url:
            await migrate(url, app_role=settings.database.app_role)
            pool = await open_pool(url, settings.database)
            try:
                writer = EventWriter(
                    pool,
                    group_commit=settings.ingest.group_commit,
                    max_group_events=settings.ingest.max_group_events,
                )
                await writer.start()
                await ensure_partitions_ahead(writer, settings)
                if settings.database.require_rls:
                    await require_row_level_security(pool)
                access = AccessRecorder(writer, settings.ingest)
                app.state.services = Services(
                    settings=settings,
                    pool=pool,
                    writer=writer,
                    reader=EventReader(pool),
                    search=postgres_search_service(
                        pool, settings.search, signing_key(settings).private
                    ),
                    access=access,
                    signing_key=signing_key(settings),
                    security=build_security(settings, pool, access, signing_key(settings)),
                )
                upkeep = asyncio.create_task(_maintenance(writer, settings))
                _freeze_startup_objects()
                try:
                    yield
                finally:
                    upkeep.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await upkeep
                    await writer.close()
            finally:
                await pool.close()

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
    app.include_router(wellknown.router)
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.ingest.max_body_bytes,
        body_timeout=settings.http.body_timeout_seconds,
    )
    return app
