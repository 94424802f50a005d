"""The tenant's Merkle log in PostgreSQL: leaves in ``seq`` order, tiles and checkpoints.

Every function runs on a connection in a tenant transaction (``database.tenant_transaction``
or ``set_tenant``), so row-level security shows one tenant's rows; the tenant is also named
in each statement, the first wall. Nothing here decides what is true: the sealer and the
verifier compute; this module only moves bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from psycopg import sql

from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
from auditline.integrity.merkle import HASH_SIZE
from auditline.integrity.tiles import TILE_HEIGHT
from auditline.storage.database import Connection
from auditline.storage.events import COLUMNS, row_to_stored

_TILES_PER_READ: Final = 1000  # 8 MiB of hashes per round trip at most


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint row: the signed note and the tree head it states."""

    tree_size: int
    root_hash: bytes
    note: str
    created_at: datetime


@dataclass(frozen=True)
class Leaf:
    """Where an event sits in its tenant's log."""

    seq: int
    id: UUID
    leaf_hash: bytes


async def log_size(conn: Connection, tenant: TenantId) -> int:
    """How many leaves the tenant's log has: every ``seq`` below it is committed."""
    cur = await conn.execute(
        "SELECT next_seq FROM tenant_log_heads WHERE tenant_id = %s", (tenant,)
    )
    row = await cur.fetchone()
    return int(row["next_seq"]) if row else 0


async def try_lock_sealing(conn: Connection, tenant: TenantId) -> bool:
    """Take the tenant's sealing lock for this transaction, unless another sealer has it."""
    cur = await conn.execute(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('auditline.seal:' || %s, 0)) AS ok",
        (tenant,),
    )
    row = await cur.fetchone()
    return bool(row and row["ok"])


async def lock_sealing(conn: Connection, tenant: TenantId) -> None:
    """Take the tenant's sealing lock for this transaction, waiting for another sealer."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('auditline.seal:' || %s, 0))", (tenant,)
    )


async def leaves(conn: Connection, tenant: TenantId, first: int, end: int) -> list[Leaf]:
    """The stored leaves with ``first <= seq < end``, in ``seq`` order (missing ones absent).

    One primary-key probe of ``events`` per number, whatever the statistics say, in the
    caller's transaction. Left to the planner, a table analyzed while nearly empty (one row
    on one page, then a hundred thousand) made this a nested loop that filtered the whole
    partition for every leaf: sealing a round of 100 k leaves took minutes, not 0.3 s.
    """
    await conn.execute("SET LOCAL enable_seqscan = off")
    cur = await conn.execute(
        """SELECT i.seq, i.id, e.leaf_hash
             FROM event_ids i
             CROSS JOIN LATERAL (
                   SELECT e.leaf_hash FROM events e
                    WHERE e.tenant_id = i.tenant_id AND e.timestamp = i.timestamp
                      AND e.id = i.id
                    LIMIT 1) e
            WHERE i.tenant_id = %s AND i.seq >= %s AND i.seq < %s
            ORDER BY i.seq""",
        (tenant, first, end),
    )
    return [Leaf(int(r["seq"]), r["id"], bytes(r["leaf_hash"])) for r in await cur.fetchall()]


async def leaf_of(conn: Connection, tenant: TenantId, event_id: UUID) -> Leaf | None:
    """The event's place in the log, or None if the tenant has no such event."""
    cur = await conn.execute(
        """SELECT i.seq, i.id, e.leaf_hash
             FROM event_ids i
             JOIN events e ON e.tenant_id = i.tenant_id AND e.timestamp = i.timestamp
                          AND e.id = i.id
            WHERE i.tenant_id = %s AND i.id = %s""",
        (tenant, event_id),
    )
    row = await cur.fetchone()
    return Leaf(int(row["seq"]), row["id"], bytes(row["leaf_hash"])) if row else None


async def read_tiles(
    conn: Connection, tenant: TenantId, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """The stored hashes of tiles ``(level, index)``, in one round trip; absent ones omitted."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    cur = await conn.execute(
        """SELECT t.level, t.idx, t.hashes
             FROM merkle_tiles t
             JOIN unnest(%s::integer[], %s::bigint[]) AS k(level, idx)
               ON t.level = k.level AND t.idx = k.idx
            WHERE t.tenant_id = %s""",
        ([level for level, _ in wanted], [index for _, index in wanted], tenant),
    )
    return {(int(r["level"]), int(r["idx"])): bytes(r["hashes"]) for r in await cur.fetchall()}


async def tile_leaves(conn: Connection, tenant: TenantId, first: int, end: int) -> list[bytes]:
    """The leaf hashes of ``seq`` first..end-1 as the level-0 tiles hold them, in order,
    stopping at the first one they lack: what remains of removed events in the tree."""
    per_tile = 1 << TILE_HEIGHT
    last_tile = (end - 1) // per_tile
    found: list[bytes] = []
    for start in range(first // per_tile, last_tile + 1, _TILES_PER_READ):
        indexes = range(start, min(start + _TILES_PER_READ, last_tile + 1))
        tiles = await read_tiles(conn, tenant, [(0, i) for i in indexes])
        for index in indexes:
            data = tiles.get((0, index), b"")
            for seq in range(max(first, index * per_tile), min(end, (index + 1) * per_tile)):
                offset = (seq - index * per_tile) * HASH_SIZE
                if len(data) < offset + HASH_SIZE:
                    return found
                found.append(data[offset : offset + HASH_SIZE])
    return found


async def write_tiles(
    conn: Connection, tenant: TenantId, tiles: Sequence[tuple[int, int, bytes]]
) -> None:
    """Store tiles ``(level, index, hashes)``; a partial tile is replaced by its longer self."""
    if not tiles:
        return
    await conn.execute(
        """INSERT INTO merkle_tiles (tenant_id, level, idx, hashes)
           SELECT %s, level, idx, hashes
             FROM unnest(%s::integer[], %s::bigint[], %s::bytea[]) AS t(level, idx, hashes)
           ON CONFLICT (tenant_id, level, idx) DO UPDATE SET hashes = EXCLUDED.hashes""",
        (tenant, [t[0] for t in tiles], [t[1] for t in tiles], [t[2] for t in tiles]),
    )


async def add_checkpoint(
    conn: Connection, tenant: TenantId, tree_size: int, root_hash: bytes, note: str
) -> None:
    await conn.execute(
        """INSERT INTO checkpoints (tenant_id, tree_size, root_hash, note)
           VALUES (%s, %s, %s, %s)""",
        (tenant, tree_size, root_hash, note),
    )


def _checkpoint(row: dict[str, Any]) -> StoredCheckpoint:
    return StoredCheckpoint(
        int(row["tree_size"]), bytes(row["root_hash"]), row["note"], row["created_at"]
    )


async def latest_checkpoint(conn: Connection, tenant: TenantId) -> StoredCheckpoint | None:
    cur = await conn.execute(
        """SELECT tree_size, root_hash, note, created_at FROM checkpoints
            WHERE tenant_id = %s ORDER BY tree_size DESC LIMIT 1""",
        (tenant,),
    )
    row = await cur.fetchone()
    return _checkpoint(row) if row else None


async def sealed_through(conn: Connection, tenant: TenantId) -> int:
    """The last ``seq`` the newest checkpoint covers (-1: none yet). Removals stop there:
    the sealer needs every leaf below the log head it has not sealed."""
    latest = await latest_checkpoint(conn, tenant)
    return latest.tree_size - 1 if latest else -1


async def checkpoint_at(conn: Connection, tenant: TenantId, size: int) -> StoredCheckpoint | None:
    cur = await conn.execute(
        """SELECT tree_size, root_hash, note, created_at FROM checkpoints
            WHERE tenant_id = %s AND tree_size = %s""",
        (tenant, size),
    )
    row = await cur.fetchone()
    return _checkpoint(row) if row else None


async def all_checkpoints(conn: Connection, tenant: TenantId) -> list[StoredCheckpoint]:
    """Every checkpoint of the tenant, smallest tree first (for the verifier)."""
    cur = await conn.execute(
        """SELECT tree_size, root_hash, note, created_at FROM checkpoints
            WHERE tenant_id = %s ORDER BY tree_size""",
        (tenant,),
    )
    return [_checkpoint(row) for row in await cur.fetchall()]


async def tenant_ids(conn: Connection) -> list[str]:
    """Every tenant's id, the platform's own logs included: each has a log to seal."""
    cur = await conn.execute("SELECT id FROM tenants ORDER BY id")
    return [row["id"] for row in await cur.fetchall()]


async def events_by_seq(
    conn: Connection, tenant: TenantId, *, batch: int = 5000
) -> AsyncIterator[StoredEvent]:
    """Every stored event of *tenant* in ``seq`` order, streamed (for the verifier).

    Read from ``events`` itself, not through ``event_ids``: the verifier checks what is
    there, and an index an administrator could have edited is not it. Run it in a
    REPEATABLE READ transaction for one consistent snapshot; it sorts the tenant's rows,
    so the statement timeout is lifted for this transaction.
    """
    await conn.execute("SET LOCAL statement_timeout = 0")
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
    query = sql.SQL("SELECT {} FROM events WHERE tenant_id = %s ORDER BY seq, id").format(columns)
    async with conn.cursor(name="auditline_verify") as cur:
        cur.itersize = batch
        await cur.execute(query, (tenant,))
        async for row in cur:
            yield row_to_stored(row)


async def received_at(conn: Connection, tenant: TenantId, seq: int) -> datetime | None:
    """When the event at *seq* was received (None if it is not stored): the sealing lag."""
    cur = await conn.execute(
        """SELECT (SELECT received_at FROM events e
                    WHERE (e.tenant_id, e.timestamp, e.id) = (i.tenant_id, i.timestamp, i.id))
                  AS received_at
             FROM event_ids i WHERE i.tenant_id = %s AND i.seq = %s""",
        (tenant, seq),
    )
    row = await cur.fetchone()
    arrived: datetime | None = row["received_at"] if row else None
    return arrived
