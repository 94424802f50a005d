"""SQL for folding the hourly rollups' deltas (migration 0021).

The write path appends its counts to ``event_rollup_deltas``; these move them into
``event_rollups`` and ``event_rollup_heavy``. Readers add both up, so a fold changes no
answer: it only keeps the deltas few.
"""

from __future__ import annotations

from auditline.domain.tenants import TenantId
from auditline.storage.database import Connection


async def pending_tenants(conn: Connection) -> list[str]:
    """The ids of the tenants with deltas to fold, over every tenant (migration 0021)."""
    cur = await conn.execute("SELECT t FROM auditline_rollup_pending() AS t ORDER BY t")
    return [row["t"] for row in await cur.fetchall()]


async def fold(conn: Connection, tenant: TenantId) -> int | None:
    """Fold *tenant*'s deltas in the caller's transaction, bound to *tenant*: how many were
    moved, or None when another transaction is folding this tenant (nothing was done)."""
    cur = await conn.execute("SELECT auditline_rollup_fold(%s) AS moved", (tenant,))
    row = await cur.fetchone()  # always one: the function's result
    moved = int(row["moved"]) if row is not None else -1
    return moved if moved >= 0 else None
