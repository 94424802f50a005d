"""Queries that check the rollup tables against each other, for the tests that change them."""

from __future__ import annotations

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

# Rollup rows and recounted rows that differ, either side missing counting as zero.
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
  FROM event_rollups r FULL JOIN recount c USING (tenant_id, dim, bucket, k1, k2)
 WHERE coalesce(r.n, 0) <> coalesce(c.n, 0)
"""
