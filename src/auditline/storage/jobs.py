"""SQL for the visible ``jobs`` rows (what ``GET /api/v1/jobs`` shows).

Every function takes the job's tenant and filters by it explicitly, under a transaction
bound to that tenant (``set_tenant``; the platform tenant for platform jobs, whose
``tenant_id`` is NULL), so row-level security is the second wall as everywhere else. The
one cross-tenant read, :func:`list_all_jobs`, is for platform admins and goes through the
SECURITY DEFINER function of migration 0011.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from auditline.domain.tenants import PLATFORM_TENANT, TenantId
from auditline.storage.database import Connection, set_tenant

_COLUMNS = (
    "id, tenant_id, kind, status, progress, result, error, attempts, created_at, started_at, "
    "finished_at"
)


@dataclass(frozen=True, slots=True)
class JobRow:
    id: UUID
    tenant_id: str | None
    kind: str
    status: str
    progress: Any
    result: Any
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _tenant_column(tenant: TenantId) -> str | None:
    """The stored tenant: NULL for the platform's own jobs."""
    return None if tenant == PLATFORM_TENANT else tenant


def _row(row: Mapping[str, Any]) -> JobRow:
    return JobRow(**{k: row[k] for k in JobRow.__slots__})


async def insert_job(
    conn: Connection, tenant: TenantId, job_id: UUID, kind: str, payload: Mapping[str, Any]
) -> None:
    """Insert the job in the caller's transaction, whichever tenant that transaction is
    bound to: row-level security is pointed at *tenant* for the insert and then back."""
    cur = await conn.execute("SELECT current_setting('auditline.tenant_id', true) AS bound")
    row = await cur.fetchone()
    bound = (row or {}).get("bound") or ""
    await set_tenant(conn, tenant)
    await conn.execute(
        "INSERT INTO jobs (id, tenant_id, kind, payload) VALUES (%s, %s, %s, %s)",
        (job_id, _tenant_column(tenant), kind, Jsonb(dict(payload))),
    )
    if bound != tenant:
        await conn.execute("SELECT set_config('auditline.tenant_id', %s, true)", (bound,))


async def start_job(
    conn: Connection, tenant: TenantId, job_id: UUID, *, lease_seconds: float
) -> str | None:
    """Start an attempt: the job becomes ``running`` under a lease of *lease_seconds*.

    Returns ``"started"``, or why not: ``"leased"`` (another delivery of the task is running
    it now), ``"succeeded"``/``"failed"`` (finished: nothing left to do), or None (no such
    job in the tenant).
    """
    cur = await conn.execute(
        """UPDATE jobs SET status = 'running', attempts = attempts + 1,
                  started_at = coalesce(started_at, clock_timestamp()),
                  lease_until = clock_timestamp() + %(lease)s * interval '1 second'
            WHERE id = %(id)s AND tenant_id IS NOT DISTINCT FROM %(tenant)s
              AND (status = 'queued'
                   OR (status = 'running' AND coalesce(lease_until <= clock_timestamp(), true)))
        RETURNING id""",
        {"id": job_id, "tenant": _tenant_column(tenant), "lease": lease_seconds},
    )
    if await cur.fetchone() is not None:
        return "started"
    cur = await conn.execute(
        "SELECT status FROM jobs WHERE id = %s AND tenant_id IS NOT DISTINCT FROM %s",
        (job_id, _tenant_column(tenant)),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return "leased" if row["status"] == "running" else str(row["status"])


async def extend_lease(conn: Connection, tenant: TenantId, job_id: UUID, seconds: float) -> None:
    await conn.execute(
        """UPDATE jobs SET lease_until = clock_timestamp() + %s * interval '1 second'
            WHERE id = %s AND tenant_id IS NOT DISTINCT FROM %s AND status = 'running'""",
        (seconds, job_id, _tenant_column(tenant)),
    )


async def finish_job(
    conn: Connection,
    tenant: TenantId,
    job_id: UUID,
    *,
    status: str,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
    unless_leased: bool = False,
) -> bool:
    """Record the outcome: succeeded (with *result*), failed (with *error*), or queued
    again after a failed attempt (with *error*, to be retried). False if no such job, or
    it is finished, or (*unless_leased*) a worker holds a live lease on it."""
    finished = status in ("succeeded", "failed")
    cur = await conn.execute(
        """UPDATE jobs SET status = %(status)s, result = %(result)s, error = %(error)s,
                  finished_at = CASE WHEN %(finished)s THEN clock_timestamp() END,
                  lease_until = NULL
            WHERE id = %(id)s AND tenant_id IS NOT DISTINCT FROM %(tenant)s
              AND status NOT IN ('succeeded', 'failed')
              AND NOT (%(unless_leased)s AND status = 'running'
                       AND coalesce(lease_until > clock_timestamp(), false))""",
        {
            "status": status,
            "result": None if result is None else Jsonb(dict(result)),
            "error": error,
            "finished": finished,
            "id": job_id,
            "tenant": _tenant_column(tenant),
            "unless_leased": unless_leased,
        },
    )
    return cur.rowcount == 1


async def set_progress(conn: Connection, tenant: TenantId, job_id: UUID, progress: Any) -> None:
    await conn.execute(
        "UPDATE jobs SET progress = %s WHERE id = %s AND tenant_id IS NOT DISTINCT FROM %s",
        (Jsonb(progress), job_id, _tenant_column(tenant)),
    )


async def prune_finished(
    conn: Connection, tenant: TenantId, *, finished_before: datetime, limit: int
) -> int:
    """Delete up to *limit* of the tenant's jobs that succeeded or failed before
    *finished_before*, oldest first; how many went. Queued and running jobs are never
    touched, however old."""
    cur = await conn.execute(
        """DELETE FROM jobs WHERE id IN (
               SELECT id FROM jobs
                WHERE tenant_id IS NOT DISTINCT FROM %(tenant)s
                  AND finished_at < %(before)s AND status IN ('succeeded', 'failed')
                ORDER BY finished_at LIMIT %(limit)s)""",
        {"tenant": _tenant_column(tenant), "before": finished_before, "limit": limit},
    )
    return cur.rowcount


async def get_job(conn: Connection, tenant: TenantId, job_id: UUID) -> JobRow | None:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM jobs WHERE id = %s AND tenant_id IS NOT DISTINCT FROM %s",  # noqa: S608
        (job_id, _tenant_column(tenant)),
    )
    row = await cur.fetchone()
    return None if row is None else _row(row)


async def list_jobs(
    conn: Connection,
    tenant: TenantId,
    *,
    kind: str | None,
    status: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[JobRow]:
    """The tenant's jobs newest first, after the keyset position *after*."""
    cur = await conn.execute(
        f"""SELECT {_COLUMNS} FROM jobs
             WHERE tenant_id IS NOT DISTINCT FROM %(tenant)s
               AND (%(kind)s::text IS NULL OR kind = %(kind)s)
               AND (%(status)s::text IS NULL OR status = %(status)s)
               AND (%(created)s::timestamptz IS NULL OR (created_at, id) < (%(created)s, %(id)s))
             ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",  # noqa: S608
        {
            "tenant": _tenant_column(tenant),
            "kind": kind,
            "status": status,
            "created": after[0] if after else None,
            "id": after[1] if after else None,
            "limit": limit,
        },
    )
    return [_row(row) for row in await cur.fetchall()]


async def list_all_jobs(
    conn: Connection,
    *,
    job_id: UUID | None = None,
    kind: str | None = None,
    status: str | None = None,
    after: tuple[datetime, UUID] | None = None,
    limit: int = 1,
) -> list[JobRow]:
    """Every tenant's jobs (platform admins only: the caller checks), newest first."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM auditline_jobs_all(%s, %s, %s, %s, %s, %s)",  # noqa: S608
        (job_id, kind, status, after[0] if after else None, after[1] if after else None, limit),
    )
    return [_row(row) for row in await cur.fetchall()]
