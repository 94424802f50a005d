"""SQL for removing events: the batched delete, the partition drop, their records.

Every function runs in the caller's transaction and names its tenant explicitly (row-level
security applies underneath as everywhere). The service (``lifecycle.retention``) decides
what may go and owns the transactions; here is only how.

Lock order, the same as the ingest path's (``storage.events``) so the two never deadlock:
the tenant row (``FOR SHARE``: a legal hold set meanwhile waits, and is seen by the next
batch), then the tenant's log head (``FOR UPDATE``), then the rollup lock the delete
trigger takes (migration 0007). A batch therefore pauses the tenant's writes for as long
as it runs, which is why batches are bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from auditline.domain.tenants import TenantId
from auditline.storage.database import Connection


@dataclass(frozen=True, slots=True)
class Removed:
    """What one statement removed from a tenant's log."""

    events: int
    ranges: list[tuple[int, int]]
    """The removed sequence numbers as inclusive ``(first, last)`` runs, in order."""
    oldest: datetime | None
    newest: datetime | None


NOTHING: Final = Removed(0, [], None, None)


async def lock_tenant(conn: Connection, tenant: TenantId) -> bool | None:
    """Lock *tenant*'s row against changes until the transaction ends; its legal hold, or
    None if it does not exist. Then lock its log head, as a write would."""
    cur = await conn.execute("SELECT legal_hold FROM tenants WHERE id = %s FOR SHARE", (tenant,))
    row = await cur.fetchone()
    if row is None:
        return None
    await conn.execute(
        "SELECT next_seq FROM tenant_log_heads WHERE tenant_id = %s FOR UPDATE", (tenant,)
    )
    return bool(row["legal_hold"])


async def tenants_retention(conn: Connection) -> list[dict[str, Any]]:
    """Every tenant (the platform log too) with its retention days and legal hold, by id:
    what the retention task works through."""
    cur = await conn.execute("SELECT id, retention_days, legal_hold FROM tenants ORDER BY id")
    return list(await cur.fetchall())


async def count_events(
    conn: Connection, tenant: TenantId, before: datetime, *, through_seq: int | None = None
) -> int:
    """How many of *tenant*'s events are older than *before* (and numbered at most
    *through_seq*, when given)."""
    cur = await conn.execute(
        """SELECT count(*) AS n FROM events
            WHERE tenant_id = %(t)s AND timestamp < %(before)s
              AND (%(through)s::bigint IS NULL OR seq <= %(through)s)""",
        {"t": tenant, "before": before, "through": through_seq},
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


# The oldest events first, through the primary key (tenant, timestamp, id); both tables in
# one statement, so an event never outlives its id row or the reverse. The runs of
# consecutive numbers are the classic gaps-and-islands grouping: seq - row_number() is
# constant along a run.
_DELETE_BATCH: Final = """
WITH doomed AS (
    SELECT timestamp, id FROM events
     WHERE tenant_id = %(t)s AND timestamp < %(before)s
       AND (%(through)s::bigint IS NULL OR seq <= %(through)s)
     ORDER BY timestamp, id
     LIMIT %(limit)s
), gone AS (
    DELETE FROM events e USING doomed d
     WHERE e.tenant_id = %(t)s AND e.timestamp = d.timestamp AND e.id = d.id
    RETURNING e.seq, e.id, e.timestamp
), ids AS (
    DELETE FROM event_ids x USING gone g WHERE x.tenant_id = %(t)s AND x.id = g.id
)
SELECT min(seq) AS first_seq, max(seq) AS last_seq,
       min(min(timestamp)) OVER () AS oldest, max(max(timestamp)) OVER () AS newest
  FROM (SELECT seq, timestamp, seq - row_number() OVER (ORDER BY seq) AS run FROM gone) g
 GROUP BY run
 ORDER BY first_seq
"""


async def delete_batch(
    conn: Connection,
    tenant: TenantId,
    before: datetime,
    limit: int,
    *,
    through_seq: int | None = None,
) -> Removed:
    """Delete at most *limit* of *tenant*'s oldest events older than *before*, with their
    ``event_ids`` rows; the rollup triggers take back their counts in the same statement."""
    cur = await conn.execute(
        _DELETE_BATCH, {"t": tenant, "before": before, "limit": limit, "through": through_seq}
    )
    return _removed(await cur.fetchall())


def _removed(rows: Sequence[dict[str, Any]]) -> Removed:
    if not rows:
        return NOTHING
    ranges = [(int(r["first_seq"]), int(r["last_seq"])) for r in rows]
    return Removed(sum(b - a + 1 for a, b in ranges), ranges, rows[0]["oldest"], rows[0]["newest"])


async def record_ranges(
    conn: Connection,
    tenant: TenantId,
    ranges: Sequence[tuple[int, int]],
    *,
    reason: str,
    actor: str,
    job_id: UUID | None,
    ids_removed: bool = True,
) -> None:
    """Add *ranges* of *tenant* to ``removed_ranges`` (migration 0012)."""
    if not ranges:
        return
    await conn.execute(
        """INSERT INTO removed_ranges (tenant_id, first_seq, last_seq, events, reason, actor,
                                       job_id, ids_removed)
           SELECT %(t)s, f, l, l - f + 1, %(reason)s, %(actor)s, %(job)s, %(ids)s
             FROM unnest(%(first)s::bigint[], %(last)s::bigint[]) AS r(f, l)""",
        {
            "t": tenant, "reason": reason, "actor": actor, "job": job_id, "ids": ids_removed,
            "first": [a for a, _ in ranges], "last": [b for _, b in ranges],
        },
    )  # fmt: skip


async def removed_ranges(conn: Connection, tenant: TenantId) -> list[tuple[int, int]]:
    """Every range of sequence numbers removed from *tenant*'s log, in order."""
    cur = await conn.execute(
        "SELECT first_seq, last_seq FROM removed_ranges WHERE tenant_id = %s ORDER BY first_seq",
        (tenant,),
    )
    return [(r["first_seq"], r["last_seq"]) for r in await cur.fetchall()]


# ---------------------------------------------------------------------------------------
# Whole partitions


def partition_name(month: datetime) -> str:
    """The name ``auditline_ensure_event_partition`` gives the month starting at *month*."""
    return f"events_y{month.year:04d}m{month.month:02d}"


async def lock_partition(conn: Connection, month: datetime, *, lock_timeout_ms: int) -> bool:
    """Lock the month's partition against inserts (a late event for that month waits) until
    the transaction ends; False if there is no such partition.

    *lock_timeout_ms* bounds the wait, so a long reader never queues writers behind us.
    """
    await conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{lock_timeout_ms}ms",))
    cur = await conn.execute("SELECT auditline_lock_event_partition(%s) AS name", (month,))
    row = await cur.fetchone()
    return row is not None and row["name"] is not None


async def partition_tenant_removal(
    conn: Connection, tenant: TenantId, month: datetime, month_end: datetime
) -> Removed:
    """What dropping the month's partition would remove from *tenant*'s log (read only).

    Reads the partition's rows of *tenant* through the parent with the month's bounds, so
    the plan prunes to that one partition.
    """
    cur = await conn.execute(
        """SELECT min(seq) AS first_seq, max(seq) AS last_seq,
                  min(min(timestamp)) OVER () AS oldest, max(max(timestamp)) OVER () AS newest
             FROM (SELECT seq, timestamp, seq - row_number() OVER (ORDER BY seq) AS run
                     FROM events
                    WHERE tenant_id = %(t)s AND timestamp >= %(from)s
                      AND timestamp < %(to)s) e
            GROUP BY run ORDER BY first_seq""",
        {"t": tenant, "from": month, "to": month_end},
    )
    return _removed(await cur.fetchall())


async def forget_rollups(
    conn: Connection, tenant: TenantId, month: datetime, month_end: datetime
) -> None:
    """Remove *tenant*'s rollup rows for the hours of the month: a dropped partition fires
    no delete trigger, and every event counted in those hours was in it (hours and
    partitions are both cut in UTC)."""
    params = {"t": tenant, "from": month, "to": month_end}
    for table in ("event_rollups", "event_rollup_heavy"):
        await conn.execute(
            f"DELETE FROM {table} WHERE tenant_id = %(t)s"  # noqa: S608 - constant names
            " AND bucket >= %(from)s AND bucket < %(to)s",
            params,
        )


async def drop_partition(conn: Connection, month: datetime) -> str | None:
    """Drop the month's partition (migration 0012); its name, or None if it was gone.

    Holds the parent table exclusively until the caller commits: commit at once.
    """
    cur = await conn.execute("SELECT auditline_drop_event_partition(%s) AS name", (month,))
    row = await cur.fetchone()
    return None if row is None or row["name"] is None else str(row["name"])


async def pending_id_ranges(conn: Connection, tenant: TenantId) -> list[tuple[int, int]]:
    """Ranges of *tenant* whose ``event_ids`` rows are still to be removed (after a drop)."""
    cur = await conn.execute(
        """SELECT first_seq, last_seq FROM removed_ranges
            WHERE tenant_id = %s AND NOT ids_removed ORDER BY first_seq""",
        (tenant,),
    )
    return [(r["first_seq"], r["last_seq"]) for r in await cur.fetchall()]


async def delete_ids_batch(
    conn: Connection, tenant: TenantId, first_seq: int, last_seq: int, limit: int
) -> int:
    """Delete at most *limit* of *tenant*'s ``event_ids`` rows numbered in the range; when
    none is left, mark the range done. How many rows went."""
    cur = await conn.execute(
        """DELETE FROM event_ids
            WHERE tenant_id = %(t)s AND seq IN (
                  SELECT seq FROM event_ids
                   WHERE tenant_id = %(t)s AND seq BETWEEN %(a)s AND %(b)s
                   ORDER BY seq LIMIT %(limit)s)""",
        {"t": tenant, "a": first_seq, "b": last_seq, "limit": limit},
    )
    n = cur.rowcount
    if n < limit:
        await conn.execute(
            """UPDATE removed_ranges SET ids_removed = true
                WHERE tenant_id = %s AND first_seq = %s""",
            (tenant, first_seq),
        )
    return n
