"""SQL for the PostgreSQL queue, the SQS outbox and the periodic schedules (migration 0011).

These tables are the service's own plumbing: no tenant reads them, so they have no
row-level security; the tenant a message is for travels in it to the ``jobs`` row, which
has. Receiving follows the well-known PostgreSQL queue pattern (procrastinate, pgmq,
graphile-worker): ``FOR UPDATE SKIP LOCKED`` so concurrent receivers never block on, or
take, the same row; a receive does not delete, it hides the row until ``visible_at``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from auditline.domain.tenants import TenantId
from auditline.storage.database import Connection

QUEUE_CHANNEL = "auditline_jobs"
"""NOTIFY channel: a message was sent (the payload is empty; listeners just receive)."""
OUTBOX_CHANNEL = "auditline_outbox"
"""NOTIFY channel: the outbox has rows for the SQS relay."""


@asynccontextmanager
async def worker_transaction(
    pool: AsyncConnectionPool[Connection], tenant: TenantId | None = None
) -> AsyncIterator[Connection]:
    """A transaction of the queue's own bookkeeping, committed without waiting for the WAL
    flush (``synchronous_commit = off`` for it alone); with *tenant*, row-level security
    shows that tenant's rows (a job's), set in the same round trip.

    Safe because delivery is at least once: a crash can lose only the last such commits
    (a receive, a job marked running or finished, a message deleted), which puts the
    message back for another delivery of an idempotent task; it never loses a message,
    whose sending commits with the caller's durability. What a task itself writes keeps
    the service's synchronous commits. It saves a disk flush per step of every task.
    """
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "SELECT set_config('synchronous_commit', 'off', true),"
            " set_config('auditline.tenant_id', %s, true)",
            (tenant or "",),
        )
        yield conn


@dataclass(frozen=True, slots=True)
class QueueRow:
    id: int
    job_id: UUID
    kind: str
    job_tenant: str | None
    payload: dict[str, Any]
    receive_count: int
    receipt: UUID | None
    error: str | None


def _queue_row(row: Mapping[str, Any]) -> QueueRow:
    return QueueRow(**{k: row[k] for k in QueueRow.__slots__})


async def send(
    conn: Connection,
    *,
    job_id: UUID,
    kind: str,
    tenant_id: str | None,
    payload: Mapping[str, Any],
    delay_seconds: float = 0.0,
) -> None:
    """Add a message in the caller's transaction; listeners wake when it commits.

    *tenant_id* is carried, as it is, to the receiver, which acts on that tenant's job."""
    await conn.execute(
        """INSERT INTO job_queue (job_id, kind, job_tenant, payload, visible_at)
           VALUES (%s, %s, %s, %s, clock_timestamp() + %s * interval '1 second')""",
        (job_id, kind, tenant_id, Jsonb(dict(payload)), delay_seconds),
    )
    await conn.execute("SELECT pg_notify(%s, '')", (QUEUE_CHANNEL,))


async def receive(
    conn: Connection, *, limit: int, visibility_seconds: float, max_receives: int
) -> tuple[list[QueueRow], list[QueueRow]]:
    """Take up to *limit* visible messages for *visibility_seconds*; also dead-letter the
    visible ones already received *max_receives* times (their receivers died or failed).

    Returns (received, dead-lettered now).
    """
    cur = await conn.execute(
        """UPDATE job_queue q
              SET dead_at = clock_timestamp(),
                  error = coalesce(q.error, 'dead-lettered after ' || q.receive_count ||
                                   ' receives without completing')
             FROM (SELECT id FROM job_queue
                    WHERE dead_at IS NULL AND visible_at <= clock_timestamp()
                      AND receive_count >= %s
                    FOR UPDATE SKIP LOCKED) dead
            WHERE q.id = dead.id
        RETURNING q.*""",
        (max_receives,),
    )
    dead = [_queue_row(row) for row in await cur.fetchall()]
    cur = await conn.execute(
        """UPDATE job_queue q
              SET visible_at = clock_timestamp() + %(vt)s * interval '1 second',
                  receive_count = q.receive_count + 1,
                  receipt = gen_random_uuid()
             FROM (SELECT id FROM job_queue
                    WHERE dead_at IS NULL AND visible_at <= clock_timestamp()
                    ORDER BY visible_at, id
                    LIMIT %(limit)s
                    FOR UPDATE SKIP LOCKED) picked
            WHERE q.id = picked.id
        RETURNING q.*""",
        {"vt": visibility_seconds, "limit": limit},
    )
    return [_queue_row(row) for row in await cur.fetchall()], dead


async def delete(conn: Connection, message_id: int, receipt: UUID) -> bool:
    """Delete a received message; False if its receipt is stale (received again since)."""
    cur = await conn.execute(
        "DELETE FROM job_queue WHERE id = %s AND receipt = %s", (message_id, receipt)
    )
    return cur.rowcount == 1


async def change_visibility(
    conn: Connection, message_id: int, receipt: UUID, seconds: float
) -> bool:
    """Hide a received message for *seconds* from now (0: visible again at once)."""
    cur = await conn.execute(
        """UPDATE job_queue SET visible_at = clock_timestamp() + %s * interval '1 second'
            WHERE id = %s AND receipt = %s AND dead_at IS NULL""",
        (seconds, message_id, receipt),
    )
    if seconds <= 0 and cur.rowcount:
        await conn.execute("SELECT pg_notify(%s, '')", (QUEUE_CHANNEL,))
    return cur.rowcount == 1


async def dead_letter(conn: Connection, message_id: int, receipt: UUID, error: str) -> bool:
    cur = await conn.execute(
        """UPDATE job_queue SET dead_at = clock_timestamp(), error = %s
            WHERE id = %s AND receipt = %s AND dead_at IS NULL""",
        (error, message_id, receipt),
    )
    return cur.rowcount == 1


async def depth(conn: Connection) -> int:
    cur = await conn.execute("SELECT count(*) AS n FROM job_queue WHERE dead_at IS NULL")
    row = await cur.fetchone()
    return 0 if row is None else int(row["n"])


async def prune_dead_letters(conn: Connection, *, dead_before: datetime, limit: int) -> int:
    """Delete up to *limit* messages dead-lettered before *dead_before*; how many went.
    Their jobs keep the error (``jobs.error``) until they are pruned in turn."""
    cur = await conn.execute(
        """DELETE FROM job_queue WHERE id IN (
               SELECT id FROM job_queue WHERE dead_at < %s ORDER BY dead_at LIMIT %s)""",
        (dead_before, limit),
    )
    return cur.rowcount


async def dead_letters(conn: Connection, limit: int = 100) -> list[QueueRow]:
    cur = await conn.execute(
        "SELECT * FROM job_queue WHERE dead_at IS NOT NULL ORDER BY dead_at, id LIMIT %s",
        (limit,),
    )
    return [_queue_row(row) for row in await cur.fetchall()]


# ---------------------------------------------------------------------------------------
# Outbox (the SQS backend)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    job_id: UUID
    body: dict[str, Any]


async def add_to_outbox(conn: Connection, job_id: UUID, body: Mapping[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO job_outbox (job_id, body) VALUES (%s, %s)", (job_id, Jsonb(dict(body)))
    )
    await conn.execute("SELECT pg_notify(%s, '')", (OUTBOX_CHANNEL,))


async def take_from_outbox(conn: Connection, limit: int) -> list[OutboxRow]:
    """Delete and return up to *limit* rows, oldest first, locked against other relays.

    Call it in a transaction and commit only after the rows were sent: a failed send rolls
    the delete back, a crash after the send sends them again (tasks are idempotent).
    """
    cur = await conn.execute(
        """DELETE FROM job_outbox WHERE id IN (
               SELECT id FROM job_outbox ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
           RETURNING id, job_id, body""",
        (limit,),
    )
    rows = sorted(await cur.fetchall(), key=lambda r: r["id"])
    return [OutboxRow(r["id"], r["job_id"], r["body"]) for r in rows]


async def outbox_size(conn: Connection) -> int:
    cur = await conn.execute("SELECT count(*) AS n FROM job_outbox")
    row = await cur.fetchone()
    return 0 if row is None else int(row["n"])


# ---------------------------------------------------------------------------------------
# Schedules


@dataclass(frozen=True, slots=True)
class DueSchedule:
    name: str
    kind: str
    payload: dict[str, Any]
    interval_seconds: float
    next_run_at: datetime


async def declare_schedule(
    conn: Connection, name: str, kind: str, payload: Mapping[str, Any], interval_seconds: float
) -> None:
    """Create the schedule (a new one is due at once) or update its task; a stored
    ``next_run_at`` survives restarts, moved earlier if the interval shrank."""
    await conn.execute(
        """INSERT INTO schedules AS s (name, kind, payload, interval_seconds, next_run_at)
           VALUES (%(name)s, %(kind)s, %(payload)s, %(interval)s, clock_timestamp())
           ON CONFLICT (name) DO UPDATE
              SET kind = excluded.kind, payload = excluded.payload,
                  interval_seconds = excluded.interval_seconds,
                  next_run_at = least(s.next_run_at, coalesce(s.last_run_at, s.next_run_at)
                                      + excluded.interval_seconds * interval '1 second')""",
        {"name": name, "kind": kind, "payload": Jsonb(dict(payload)), "interval": interval_seconds},
    )


async def claim_due_schedules(conn: Connection, names: list[str]) -> list[DueSchedule]:
    """Lock the due schedules among *names* that no other scheduler holds; call in the
    transaction that submits their jobs and then :func:`schedule_ran`."""
    cur = await conn.execute(
        """SELECT name, kind, payload, interval_seconds, next_run_at FROM schedules
            WHERE name = ANY(%s) AND next_run_at <= clock_timestamp()
            ORDER BY next_run_at FOR UPDATE SKIP LOCKED""",
        (names,),
    )
    return [DueSchedule(**row) for row in await cur.fetchall()]


async def schedule_ran(conn: Connection, name: str, job_id: UUID) -> None:
    """Move the schedule one interval on from now (missed runs are not caught up)."""
    await conn.execute(
        """UPDATE schedules SET last_run_at = now.t, last_job_id = %s,
                  next_run_at = now.t + interval_seconds * interval '1 second'
             FROM (SELECT clock_timestamp() AS t) now
            WHERE name = %s""",
        (job_id, name),
    )


async def next_schedule_at(conn: Connection, names: list[str]) -> datetime | None:
    cur = await conn.execute(
        "SELECT min(next_run_at) AS at FROM schedules WHERE name = ANY(%s)", (names,)
    )
    row = await cur.fetchone()
    return None if row is None else row["at"]
