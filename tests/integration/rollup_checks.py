"""Queries that check the rollup tables against each other, for the tests that change them."""

from __future__ import annotations

import time
from typing import Any

import psycopg


def fold_all(conn: psycopg.Connection[Any]) -> int:
    """Fold every tenant's rollup deltas now, as the service's folder does (migration 0021),
    waiting out a folder that holds a tenant meanwhile; the number of deltas moved."""
    moved = 0
    for _ in range(100):
        with conn.transaction():
            rows = conn.execute(
                "SELECT auditline_rollup_fold(t) FROM auditline_rollup_pending() AS t"
            ).fetchall()
        moved += sum(r[0] for r in rows if r[0] > 0)
        if all(r[0] >= 0 for r in rows):
            return moved
        time.sleep(0.05)
    raise AssertionError("a tenant's rollup deltas stayed locked")


def heavy_mismatches(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """:data:`HEAVY_MISMATCHES` once every delta is folded (the invariant is the folded
    rows'; readers count unfolded keys exactly, see ``storage/search/stats.py``)."""
    fold_all(conn)
    return conn.execute(HEAVY_MISMATCHES).fetchall()


# Every user/resource rollup row that reached the threshold, and every heavy row, with
# their counts: the two sides of the invariant the pruned ranking relies on. Empty when
# each heavy-enough rollup row has a heavy row with the same count and no heavy row lost
# its rollup row.
HEAVY_MISMATCHES = """
    SELECT 'missing or different' AS what, r.* FROM event_rollups r
     WHERE r.dim IN ('user', 'resource') AND r.n >= auditline_heavy_min()
       AND ((r.dim = 'user' AND r.k1 <> '') OR (r.dim = 'resource' AND r.k2 <> ''))
       AND NOT EXISTS (SELECT FROM event_rollup_heavy h
                        WHERE (h.tenant_id, h.dim, h.bucket, h.k1, h.k2, h.n)
                            = (r.tenant_id, r.dim, r.bucket, r.k1, r.k2, r.n))
    UNION ALL
    SELECT 'stale', h.* FROM event_rollup_heavy h
     WHERE NOT EXISTS (SELECT FROM event_rollups r
                        WHERE (h.tenant_id, h.dim, h.bucket, h.k1, h.k2, h.n)
                            = (r.tenant_id, r.dim, r.bucket, r.k1, r.k2, r.n))
"""

# Rollup counts (folded rows plus deltas, as readers add them up) and recounted rows that
# differ, either side missing counting as zero.
DIFFERENCES = """
WITH recount AS (
    SELECT x.tenant_id, x.dim, x.bucket, x.k1, x.k2, count(*) AS n
      FROM events e,
           LATERAL auditline_rollup_rows(e.tenant_id, e.timestamp, e.action, e.severity,
                                         e.resource_type, e.outcome, e.user_id,
                                         e.resource_id) x
     WHERE e.resource_type IS DISTINCT FROM 'audit_log'
     GROUP BY 1, 2, 3, 4, 5
)
SELECT tenant_id, dim, bucket, k1, k2, coalesce(r.n, 0) AS rollup, coalesce(c.n, 0) AS recount
  FROM (SELECT tenant_id, dim, bucket, k1, k2, sum(n) AS n FROM event_rollup_rows
         GROUP BY 1, 2, 3, 4, 5) r
  FULL JOIN recount c USING (tenant_id, dim, bucket, k1, k2)
 WHERE coalesce(r.n, 0) <> coalesce(c.n, 0)
"""

# The same for the folded rows alone: empty once every delta is folded (and, before
# migration 0021, whenever the triggers kept the counters).
FOLDED_DIFFERENCES = DIFFERENCES.replace(
    """(SELECT tenant_id, dim, bucket, k1, k2, sum(n) AS n FROM event_rollup_rows
         GROUP BY 1, 2, 3, 4, 5) r""",
    "event_rollups r",
)
