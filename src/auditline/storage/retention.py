"""SQL for removing events: the batched delete, the partition drop, their records.

Every function runs in the caller's transaction and names its tenant explicitly (row-level
security applies underneath as everywhere). The service (``lifecycle.retention``) decides
what may go and owns the transactions; here is only how.

Locks of a batch: the tenant row (``FOR SHARE``: a legal hold set meanwhile waits, and is
seen by the next batch) and the tenant's removal lock (removals of one tenant take turns);
then the delete (whose trigger appends the rollups' negative deltas, migration 0021); then
the record, whose insert takes the log head as every write does, held only until the
commit that follows. So a batch pauses the tenant's writes for the time of its
record and commit, not of its delete.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from auditline.domain.tenants import TenantId
from auditline.storage.database import Connection
from auditline.storage.migrations import LOCK_KEY


@dataclass(frozen=True, slots=True)
class Removed:
    """What one statement removed from a tenant's log."""

    events: int
    ranges: list[tuple[int, int]]
    """The removed sequence numbers as inclusive ``(first, last)`` runs, in order."""
    oldest: datetime | None
    newest: datetime | None
    records: list[Any] = field(default_factory=list)
    """The ``after`` of each removal record among the removed events: what they named must
    be named again by the records of this removal (``domain.retention.carried_ranges``)."""
    edge: tuple[datetime, UUID] | None = None
    """The key (timestamp, id) a full batch ended at: where the next one starts."""


NOTHING: Final = Removed(0, [], None, None)
# Removal records among the removed rows, per run (a removal record is an event of the
# tenant's own log: in time, retention takes it too).
_RECORDS: Final = """jsonb_agg(after) FILTER (WHERE resource_type = 'audit_log'
                                       AND action = 'DELETE' AND after ? 'seq_ranges')"""


_REMOVAL_LOCK: Final = 1380800076  # "RMVL"; two-int keys, as the rollup lock's
ROLLUP_LOCK: Final = 1380928587  # "ROLK", the fold's (0021); a test checks they agree


async def lock_tenant(conn: Connection, tenant: TenantId) -> bool | None:
    """Lock *tenant*'s row against changes and take its removal lock, both until the
    transaction ends; its legal hold, or None if it does not exist."""
    cur = await conn.execute("SELECT legal_hold FROM tenants WHERE id = %s FOR SHARE", (tenant,))
    row = await cur.fetchone()
    if row is None:
        return None
    await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_REMOVAL_LOCK, tenant))
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


# A batch is a range of the primary key (tenant, timestamp, id): the oldest events up to the
# *limit*-th one (its key found first, _BATCH_EDGE), deleted by one range condition. Not a
# join against the list of keys: with estimates off (a month loaded since the last
# ANALYZE), the planner joined the two by a nested loop filtering every pair, quadratic in
# the batch (849 k comparisons, 0.33 s for 922 rows, in the benchmark). Both tables in one
# statement, so an event never outlives its id row or the reverse. The runs of consecutive
# numbers are the classic gaps-and-islands grouping: seq - row_number() is constant along
# a run.
#
# A removal goes through the tenant's events in key order, and each batch starts after the
# previous one's edge (*start_after*): from the start, every batch's scan would step over
# the index entries of all the rows deleted before it and not yet vacuumed, a cost that
# grew with the removal (1 M events in batches of 1,000: 322 ms a batch on average).
# Two statements rather than one with an optional bound: a generic plan cannot seek on a
# bound that may be NULL.
_AFTER: Final = "AND (timestamp, id) > (%(after_ts)s, %(after_id)s)"
_BATCH_EDGE: Final = """
SELECT timestamp, id FROM events
 WHERE tenant_id = %(t)s AND timestamp < %(before)s {after}
   AND (%(through)s::bigint IS NULL OR seq <= %(through)s)
 ORDER BY timestamp, id
OFFSET %(offset)s LIMIT 1
"""
_DELETE_BATCH: Final = f"""
WITH gone AS (
    DELETE FROM events e
     WHERE e.tenant_id = %(t)s AND e.timestamp < %(before)s {{after}}
       AND (e.timestamp, e.id) <= (%(edge_ts)s, %(edge_id)s)
       AND (%(through)s::bigint IS NULL OR e.seq <= %(through)s)
    RETURNING e.seq, e.id, e.timestamp, e.resource_type, e.action, e.after
), ids AS (
    DELETE FROM event_ids x USING gone g WHERE x.tenant_id = %(t)s AND x.id = g.id
)
SELECT min(seq) AS first_seq, max(seq) AS last_seq,
       min(min(timestamp)) OVER () AS oldest, max(max(timestamp)) OVER () AS newest,
       {_RECORDS} AS records
  FROM (SELECT seq, timestamp, resource_type, action, after,
               seq - row_number() OVER (ORDER BY seq) AS run FROM gone) g
 GROUP BY run
 ORDER BY first_seq
"""  # noqa: S608 - constants only
_LAST_UUID: Final = UUID(int=2**128 - 1)
# (edge, delete) for a removal's first batch, and for those after an edge.
_STATEMENTS: Final = {
    after: (_BATCH_EDGE.format(after=bound), _DELETE_BATCH.format(after=bound))
    for after, bound in ((False, ""), (True, _AFTER))
}


async def delete_batch(
    conn: Connection,
    tenant: TenantId,
    before: datetime,
    limit: int,
    *,
    through_seq: int | None = None,
    start_after: tuple[datetime, UUID] | None = None,
) -> Removed:
    """Delete at most *limit* of *tenant*'s oldest events older than *before* (about as
    many more as arrive meanwhile with timestamps in the batch's range), with their
    ``event_ids`` rows; the rollup triggers take back their counts in the same statement.

    With *start_after* (the key the previous batch ended at) only events after it: a
    removal passes the batch's ``edge`` to its next one, and ends with a batch from the
    start, for events that arrived meanwhile behind the edge. The edge is None when fewer
    than *limit* events were left.
    """
    params: dict[str, Any] = {"t": tenant, "before": before, "through": through_seq}
    if start_after is not None:
        params["after_ts"], params["after_id"] = start_after
    find_edge, delete = _STATEMENTS[start_after is not None]
    cur = await conn.execute(find_edge, {**params, "offset": limit - 1})
    edge = await cur.fetchone()
    # Fewer than *limit* left: all of them, up to the bound.
    params["edge_ts"], params["edge_id"] = (
        (edge["timestamp"], edge["id"]) if edge else (before, _LAST_UUID)
    )
    cur = await conn.execute(delete, params)
    removed = _removed(await cur.fetchall())
    if edge is None:
        return removed
    return dataclasses.replace(removed, edge=(edge["timestamp"], edge["id"]))


def _removed(rows: Sequence[dict[str, Any]]) -> Removed:
    if not rows:
        return NOTHING
    ranges = [(int(r["first_seq"]), int(r["last_seq"])) for r in rows]
    records = [after for r in rows for after in r["records"] or []]
    return Removed(
        sum(b - a + 1 for a, b in ranges), ranges, rows[0]["oldest"], rows[0]["newest"], records
    )


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
    the transaction ends, after the schema lock; False if there is no such partition.

    *lock_timeout_ms* bounds the wait, so a long reader never queues writers behind us.
    """
    await conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{lock_timeout_ms}ms",))
    # First the lock every schema change takes (migration 0006), which the drop takes
    # again at the end: taken last, it could meet a partition being created by a process
    # that holds it and waits for the parent table, which this transaction's records lock.
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
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
        f"""SELECT min(seq) AS first_seq, max(seq) AS last_seq,
                   min(min(timestamp)) OVER () AS oldest, max(max(timestamp)) OVER () AS newest,
                   {_RECORDS} AS records
              FROM (SELECT seq, timestamp, resource_type, action, after,
                           seq - row_number() OVER (ORDER BY seq) AS run
                      FROM events
                     WHERE tenant_id = %(t)s AND timestamp >= %(from)s
                       AND timestamp < %(to)s) e
             GROUP BY run ORDER BY first_seq""",  # noqa: S608 - constants only
        {"t": tenant, "from": month, "to": month_end},
    )
    return _removed(await cur.fetchall())


async def forget_rollups(
    conn: Connection, tenant: TenantId, month: datetime, month_end: datetime
) -> None:
    """Remove *tenant*'s rollup rows and deltas for the hours of the month: a dropped
    partition fires no delete trigger, and every event counted in those hours was in it
    (hours and partitions are both cut in UTC).

    Takes the tenant's rollup lock first (migration 0021), until the caller commits: a
    fold in flight could otherwise write the month's counts back after this removed them.
    """
    params = {"t": tenant, "from": month, "to": month_end}
    await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (ROLLUP_LOCK, tenant))
    for table in ("event_rollups", "event_rollup_heavy", "event_rollup_deltas"):
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
    params = {"t": tenant, "a": first_seq, "b": last_seq}
    cur = await conn.execute(  # a range of the unique (tenant, seq) index, as delete_batch
        """SELECT seq FROM event_ids WHERE tenant_id = %(t)s AND seq BETWEEN %(a)s AND %(b)s
            ORDER BY seq OFFSET %(offset)s LIMIT 1""",
        {**params, "offset": limit - 1},
    )
    edge = await cur.fetchone()
    cur = await conn.execute(
        """DELETE FROM event_ids
            WHERE tenant_id = %(t)s AND seq BETWEEN %(a)s AND %(edge)s""",
        {**params, "edge": edge["seq"] if edge else last_seq},
    )
    n = cur.rowcount
    if n < limit:
        await conn.execute(
            """UPDATE removed_ranges SET ids_removed = true
                WHERE tenant_id = %s AND first_seq = %s""",
            (tenant, first_seq),
        )
    return n
