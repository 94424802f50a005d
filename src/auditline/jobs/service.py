"""The jobs service: submit work, see jobs; and the shapes a task handler is written to.

``Jobs.submit`` is the one way work enters the queue. It writes the visible job row and
sends the message in one transaction, the caller's when it passes ``conn``: work that
follows a write commits or rolls back with the write (PostgreSQL backend: the queue row
itself; SQS backend: an outbox row, relayed after commit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool
from uuid_utils.compat import uuid7

from auditline.domain.tenants import PLATFORM_TENANT, TenantId
from auditline.jobs.queue import PRUNE_BATCH, Queue
from auditline.storage import jobs as store
from auditline.storage.database import Connection, tenant_transaction
from auditline.storage.jobs import JobRow
from auditline.storage.tenants import list_tenants

TenantScope = Callable[[str | None], TenantId]
"""The tenant a job acts on, from the id stored with it (None: the platform tenant).

Made at the composition root with ``tenancy.scope.for_system``: the worker acts on a job's
tenant because the job was submitted for it, not on any caller's grant."""


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a running task knows about its job, and how it reports progress."""

    job_id: UUID
    tenant: TenantId | None  # None: a platform job
    attempt: int  # 1 on the first delivery
    _report: Callable[[Any], Awaitable[None]] = field(repr=False)

    async def progress(self, value: float | Mapping[str, Any]) -> None:
        """Record progress on the job row (a fraction 0..1, or any JSON object)."""
        await self._report(value if isinstance(value, int | float) else dict(value))


Handler = Callable[[JobContext, dict[str, Any]], Awaitable[dict[str, Any]]]
"""``async def handler(ctx, payload) -> result``: a thin, idempotent wrapper over a service.
The returned dict is the job's ``result``; an exception fails the attempt (retried with
backoff, dead-lettered after ``jobs.max_receives``)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """A periodic task: submitted as a platform job of *kind* every *interval_seconds*,
    once across all processes."""

    name: str
    kind: str
    payload: Mapping[str, Any]
    interval_seconds: float


@dataclass(frozen=True)
class Tasks:
    """Every handler by kind, and the periodic schedules (built in ``auditline.tasks``)."""

    handlers: Mapping[str, Handler]
    schedules: tuple[Schedule, ...] = ()


class Jobs:
    def __init__(
        self, pool: AsyncConnectionPool[Connection], queue: Queue, scope: TenantScope
    ) -> None:
        self.pool = pool
        self.queue = queue
        self.scope = scope

    async def submit(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        tenant: TenantId | None,
        conn: Connection | None = None,
    ) -> UUID:
        """Create the job (status ``queued``) and send its task; in *conn*'s transaction
        when given (nothing is submitted if it rolls back), else in one of its own."""
        job_id: UUID = uuid7()
        if tenant == PLATFORM_TENANT:
            tenant = None  # platform work is stored and delivered as tenant-less
        if conn is not None:
            await self._write(conn, job_id, kind, payload, tenant)
        else:
            async with self.pool.connection() as own, own.transaction():
                await self._write(own, job_id, kind, payload, tenant)
        return job_id

    async def _write(
        self,
        conn: Connection,
        job_id: UUID,
        kind: str,
        payload: Mapping[str, Any],
        tenant: TenantId | None,
    ) -> None:
        await store.insert_job(conn, self.scope(tenant), job_id, kind, payload)
        await self.queue.send(conn, job_id=job_id, kind=kind, tenant=tenant, payload=payload)

    async def get(self, tenant: TenantId, job_id: UUID) -> JobRow | None:
        """The tenant's job (the platform tenant: platform jobs), or None."""
        async with tenant_transaction(self.pool, tenant) as conn:
            return await store.get_job(conn, tenant, job_id)

    async def page(
        self,
        tenant: TenantId,
        *,
        kind: str | None = None,
        status: str | None = None,
        after: tuple[datetime, UUID] | None = None,
        limit: int = 50,
    ) -> list[JobRow]:
        async with tenant_transaction(self.pool, tenant) as conn:
            return await store.list_jobs(
                conn, tenant, kind=kind, status=status, after=after, limit=limit
            )

    async def get_any(self, job_id: UUID) -> JobRow | None:
        """Any tenant's job: for platform admins only (the caller checks)."""
        async with self.pool.connection() as conn, conn.transaction():
            rows = await store.list_all_jobs(conn, job_id=job_id)
        return rows[0] if rows else None

    async def page_any(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        after: tuple[datetime, UUID] | None = None,
        limit: int = 50,
    ) -> list[JobRow]:
        """Every tenant's jobs: for platform admins only (the caller checks)."""
        async with self.pool.connection() as conn, conn.transaction():
            return await store.list_all_jobs(
                conn, kind=kind, status=status, after=after, limit=limit
            )

    async def prune(self, finished_before: datetime) -> dict[str, int]:
        """Delete the jobs every tenant (and the platform) finished before
        *finished_before*, and the queue's dead letters from before then; the counts.

        A tenant at a time, in batches of ``PRUNE_BATCH``, each batch its own short
        transaction under that tenant's row-level security. Queued and running jobs stay
        whatever their age. Nothing here is evidence: what a job removed from a log is
        recorded in that log (removal records), not in its job row."""
        async with self.pool.connection() as conn:
            tenants = [t.id for t in await list_tenants(conn)]
        jobs = 0
        for tenant in (*tenants, None):
            scoped = self.scope(tenant)
            while True:
                async with tenant_transaction(self.pool, scoped) as conn:
                    batch = await store.prune_finished(
                        conn, scoped, finished_before=finished_before, limit=PRUNE_BATCH
                    )
                jobs += batch
                if batch < PRUNE_BATCH:
                    break
        dead = await self.queue.prune_dead_letters(finished_before)
        return {"jobs": jobs, "dead_letters": dead}
