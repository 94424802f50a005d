"""The composition root: every service of a process, built from the settings in one place.

``open_services`` is the one start-up sequence. The API's lifespan, every CLI command and
(as it lands) the worker open it, use what it yields and leave it to close everything
again, in reverse order. Nothing else creates a pool, a writer or a service, so an operator's
command and an API request run the same code with the same guarantees: row-level security
checked, partitions ready, access and changes recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from auditline.config import Settings
from auditline.domain.tenants import TenantId
from auditline.ingest.access import AccessRecorder
from auditline.ingest.service import Ingest
from auditline.ingest.tenant_rules import TenantRules, database_loader
from auditline.ingest.writer import EventWriter
from auditline.jobs.postgres import PostgresQueue
from auditline.jobs.queue import Queue
from auditline.jobs.service import Jobs
from auditline.jobs.sqs import SqsQueue
from auditline.jobs.upkeep import ensure_partitions_ahead
from auditline.lifecycle.backup import Backups
from auditline.runtime import database, signing_key
from auditline.search.service import SearchService
from auditline.security.service import Security, build_security
from auditline.security.tokens import SigningKey
from auditline.storage.database import Connection, open_pool
from auditline.storage.migrations import migrate
from auditline.storage.rls import require_row_level_security
from auditline.storage.search.backend import postgres_search_service
from auditline.tenancy.scope import PLATFORM, for_system
from auditline.tenancy.service import TenantService


@dataclass(frozen=True)
class Services:
    """Everything requests, commands and jobs use; made and closed by :func:`open_services`."""

    settings: Settings
    pool: AsyncConnectionPool[Connection]
    writer: EventWriter
    access: AccessRecorder
    signing_key: SigningKey
    security: Security
    ingest: Ingest
    search: SearchService
    tenants: TenantService
    jobs: Jobs
    backups: Backups


def job_tenant(tenant: str | None) -> TenantId:
    """The tenant a job acts on: the one it was submitted for (None: the platform)."""
    if tenant is None:
        return PLATFORM
    return for_system(tenant, reason="a job acts on the tenant it was submitted for")


def build_queue(settings: Settings, pool: AsyncConnectionPool[Connection], url: str) -> Queue:
    """The configured queue backend (connected lazily, by the worker that receives)."""
    jobs = settings.jobs
    if jobs.backend == "sqs":
        return SqsQueue(
            pool,
            url,
            jobs.sqs,
            visibility_seconds=jobs.visibility_timeout_seconds,
            max_receives=jobs.max_receives,
            poll_seconds=jobs.poll_seconds,
        )
    return PostgresQueue(
        pool,
        url,
        visibility_seconds=jobs.visibility_timeout_seconds,
        max_receives=jobs.max_receives,
    )


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Migrate, connect and build every service; close them all when the block ends.

    The database is ``settings.database.url``, or the data dir's embedded server (started
    if needed). Start-up refuses to go on if the application role could bypass row-level
    security (unless ``database.require_rls`` is off, for debugging).
    """
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
            try:
                await ensure_partitions_ahead(writer, settings)
                if settings.database.require_rls:
                    await require_row_level_security(pool)
                key = signing_key(settings)
                access = AccessRecorder(writer, settings.ingest)
                rules = TenantRules(
                    database_loader(pool), ttl_seconds=settings.ingest.masking_rules_ttl_seconds
                )
                search = postgres_search_service(pool, settings.search, key.private, access)
                queue = build_queue(settings, pool, url)
                try:
                    yield Services(
                        settings=settings,
                        pool=pool,
                        writer=writer,
                        access=access,
                        signing_key=key,
                        security=build_security(settings, pool, access, key),
                        ingest=Ingest(writer, search.events, settings.ingest, rules),
                        search=search,
                        tenants=TenantService(pool, access, rules, settings.ingest),
                        jobs=Jobs(pool, queue, job_tenant),
                        backups=Backups(settings, url),
                    )
                finally:
                    await queue.close()  # if a worker started it
            finally:
                await writer.close()
        finally:
            await pool.close()
