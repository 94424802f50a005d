"""SQL for the OpenSearch indexer: per-tenant progress and removals still to propagate.

Progress is a number (migration 0018): every event of the tenant with ``seq`` below
``next_seq`` is in the index. The indexer holds the tenant's progress row locked (``FOR
UPDATE SKIP LOCKED``) for a whole run, so two workers never index one tenant at once and a
second one simply skips it; the lock dies with a crashed worker's connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from psycopg import sql

from auditline.domain.tenants import TenantId
from auditline.storage.database import Connection


async def lock_progress(conn: Connection, tenant: TenantId) -> int | None:
    """*tenant*'s indexing progress, locked until the transaction ends; None when another
    indexer holds it. Never waits for another indexer.

    The row is only inserted when it does not exist yet (a tenant's first run): an
    ``INSERT ... ON CONFLICT DO NOTHING`` against a row another indexer has updated and
    not yet committed waits for that indexer's whole run, which made concurrent workers
    fail on their statement timeout instead of skipping the tenant. Two first runs of
    the same new tenant are kept apart by a transaction-level advisory lock instead.
    """
    taken = await _take_progress(conn, tenant)
    if taken is not None:
        return taken
    cur = await conn.execute(
        """SELECT NOT EXISTS (SELECT 1 FROM search_index_progress WHERE tenant_id = %s)
                  AND pg_try_advisory_xact_lock(hashtext(%s)) AS first""",
        (tenant, f"auditline.search.progress:{tenant}"),
    )
    first = await cur.fetchone()
    if not (first and first["first"]):  # held by another indexer
        return None
    await conn.execute(
        "INSERT INTO search_index_progress (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING",
        (tenant,),
    )
    return await _take_progress(conn, tenant)


async def _take_progress(conn: Connection, tenant: TenantId) -> int | None:
    """The row's ``next_seq``, locked; None when it is missing or another indexer holds it."""
    cur = await conn.execute(
        """SELECT next_seq FROM search_index_progress WHERE tenant_id = %s
           FOR UPDATE SKIP LOCKED""",
        (tenant,),
    )
    row = await cur.fetchone()
    return None if row is None else int(row["next_seq"])


async def wait_progress(conn: Connection, tenant: TenantId) -> int:
    """*tenant*'s indexing progress, locked until the transaction ends, waiting for a live
    run that holds it (a rebuild's final step: the live indexer never waits, so the two
    cannot deadlock)."""
    await conn.execute(
        "INSERT INTO search_index_progress (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING",
        (tenant,),
    )
    cur = await conn.execute(
        "SELECT next_seq FROM search_index_progress WHERE tenant_id = %s FOR UPDATE", (tenant,)
    )
    row = await cur.fetchone()
    return 0 if row is None else int(row["next_seq"])


_REBUILD_LOCK = "auditline.search.rebuild"


async def try_rebuild_lock(conn: Connection, *, shared: bool = False) -> bool:
    """Whether this session now holds the rebuild lock (a session advisory lock: released
    by :func:`release_rebuild_lock` or when the connection closes). A full rebuild takes
    it exclusively (one at a time); a tenant's repair *shared* (repairs run side by side,
    never during a full rebuild)."""
    take = sql.SQL("pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock")
    cur = await conn.execute(
        sql.SQL("SELECT {}(hashtext(%s)) AS locked").format(take), (_REBUILD_LOCK,)
    )
    row = await cur.fetchone()
    return bool(row and row["locked"])


async def release_rebuild_lock(conn: Connection, *, shared: bool = False) -> None:
    release = sql.SQL("pg_advisory_unlock_shared" if shared else "pg_advisory_unlock")
    await conn.execute(sql.SQL("SELECT {}(hashtext(%s))").format(release), (_REBUILD_LOCK,))


async def advance(conn: Connection, tenant: TenantId, next_seq: int) -> None:
    await conn.execute(
        """UPDATE search_index_progress SET next_seq = %s, indexed_at = now()
            WHERE tenant_id = %s""",
        (next_seq, tenant),
    )


async def progress(conn: Connection, tenant: TenantId) -> tuple[int, datetime | None]:
    """(next_seq, indexed_at) of *tenant*: (0, None) before its first run."""
    cur = await conn.execute(
        "SELECT next_seq, indexed_at FROM search_index_progress WHERE tenant_id = %s",
        (tenant,),
    )
    row = await cur.fetchone()
    return (0, None) if row is None else (int(row["next_seq"]), row["indexed_at"])


async def lag(conn: Connection, tenant: TenantId) -> tuple[int, datetime | None]:
    """(events committed but not indexed, when the oldest of them was received) for
    *tenant*; (0, None) when the index has caught up."""
    cur = await conn.execute(
        """SELECT h.next_seq - coalesce(p.next_seq, 0) AS behind,
                  CASE WHEN h.next_seq > coalesce(p.next_seq, 0) THEN (
                      SELECT e.received_at FROM event_ids i
                        JOIN events e ON e.tenant_id = i.tenant_id
                                     AND e.timestamp = i.timestamp AND e.id = i.id
                       WHERE i.tenant_id = h.tenant_id AND e.tenant_id = h.tenant_id
                         AND i.seq >= coalesce(p.next_seq, 0)
                       ORDER BY i.seq LIMIT 1) END AS oldest
             FROM tenant_log_heads h
             LEFT JOIN search_index_progress p ON p.tenant_id = h.tenant_id
            WHERE h.tenant_id = %s""",
        (tenant,),
    )
    row = await cur.fetchone()
    if row is None:
        return 0, None
    return max(0, int(row["behind"])), row["oldest"]


async def pending_removals(
    conn: Connection, tenant: TenantId, *, limit: int
) -> list[tuple[int, int]]:
    """Ranges removed from *tenant*'s log that the index has not been told about yet."""
    cur = await conn.execute(
        """SELECT first_seq, last_seq FROM removed_ranges
            WHERE tenant_id = %s AND NOT search_propagated
            ORDER BY first_seq LIMIT %s""",
        (tenant, limit),
    )
    return [(int(r["first_seq"]), int(r["last_seq"])) for r in await cur.fetchall()]


async def mark_propagated(conn: Connection, tenant: TenantId, firsts: Sequence[int]) -> None:
    """Flag *tenant*'s ranges starting at *firsts* as deleted from the live index. Rows
    already flagged are left as they are, so flagging every range of a tenant at a rebuild's
    swap writes only the few the live indexer had not reached."""
    await conn.execute(
        """UPDATE removed_ranges SET search_propagated = true
            WHERE tenant_id = %s AND first_seq = ANY(%s::bigint[]) AND NOT search_propagated""",
        (tenant, list(firsts)),
    )
