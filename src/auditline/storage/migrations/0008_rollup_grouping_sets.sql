-- Rollup maintenance counts a statement's events in one pass.
--
-- The triggers of 0003/0004 turned each event into seven (dimension, key) rows with
-- auditline_rollup_rows and grouped those: 7,000 rows hashed, and the hour computed 7,000
-- times, for a 1,000-event statement. One GROUPING SETS aggregation over the events gives
-- the same counts from 1,000 rows: 1.8 against 5.9 ms to count a 1,000-event batch, on an
-- idle machine (docs/benchmarks/ingest-notes.md). The insert trigger runs inside the
-- writing transaction, after the tenant's log head is locked (storage/events.py), so the
-- tenant's other writes wait for it.
--
-- GROUPING(action, severity, rt, oc, us, ri) has one bit per column, set when the column is
-- not in the row's grouping set, the first column the most significant (32): 63 is the
-- empty set ('total'), 31 action, 47 severity, 55 resource type, 59 outcome, 61 user, and
-- 54 the (resource type, resource id) pair. Keys are coalesced to '' before grouping, as
-- auditline_rollup_rows does, so a missing value and '' share one key. Exactly one column is
-- grouped in the one-column sets, so coalescing the columns in order yields k1; only the
-- pair has a k2.
--
-- The query is the same in both functions; tests/integration/test_rollup_recount.py checks
-- both against a recount of the events with auditline_rollup_rows.

CREATE OR REPLACE FUNCTION auditline_rollup_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    WITH counts AS (
        SELECT tenant_id,
               CASE GROUPING(action, severity, rt, oc, us, ri)
                    WHEN 63 THEN 'total' WHEN 31 THEN 'action' WHEN 47 THEN 'severity'
                    WHEN 55 THEN 'resource_type' WHEN 59 THEN 'outcome' WHEN 61 THEN 'user'
                    WHEN 54 THEN 'resource' END AS dim,
               bucket,
               coalesce(action, severity, rt, oc, us, '') AS k1,
               coalesce(ri, '') AS k2,
               count(*) AS n
          FROM (SELECT tenant_id, date_trunc('hour', timestamp, 'UTC') AS bucket, action,
                       severity::text AS severity, coalesce(resource_type, '') AS rt,
                       coalesce(outcome, '') AS oc, coalesce(user_id, '') AS us,
                       coalesce(resource_id, '') AS ri
                  FROM new_events) e
         GROUP BY tenant_id, bucket,
                  GROUPING SETS ((), (action), (severity), (rt), (oc), (us), (rt, ri))
    ), counted AS (
        INSERT INTO event_rollups AS r (tenant_id, dim, bucket, k1, k2, n)
        SELECT tenant_id, dim, bucket, k1, k2, n FROM counts
        ON CONFLICT (tenant_id, dim, bucket, k1, k2) DO UPDATE SET n = r.n + excluded.n
        RETURNING r.tenant_id, r.dim, r.bucket, r.k1, r.k2, r.n
    )
    INSERT INTO event_rollup_heavy AS h (tenant_id, dim, bucket, k1, k2, n)
    SELECT c.tenant_id, c.dim, c.bucket, c.k1, c.k2, c.n
      FROM counted c
     WHERE auditline_is_heavy(c.dim, c.k1, c.k2, c.n)
    ON CONFLICT (tenant_id, dim, bucket, k1, k2) DO UPDATE SET n = excluded.n;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION auditline_rollup_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    WITH counts AS (
        SELECT tenant_id,
               CASE GROUPING(action, severity, rt, oc, us, ri)
                    WHEN 63 THEN 'total' WHEN 31 THEN 'action' WHEN 47 THEN 'severity'
                    WHEN 55 THEN 'resource_type' WHEN 59 THEN 'outcome' WHEN 61 THEN 'user'
                    WHEN 54 THEN 'resource' END AS dim,
               bucket,
               coalesce(action, severity, rt, oc, us, '') AS k1,
               coalesce(ri, '') AS k2,
               count(*) AS n
          FROM (SELECT tenant_id, date_trunc('hour', timestamp, 'UTC') AS bucket, action,
                       severity::text AS severity, coalesce(resource_type, '') AS rt,
                       coalesce(outcome, '') AS oc, coalesce(user_id, '') AS us,
                       coalesce(resource_id, '') AS ri
                  FROM old_events) e
         GROUP BY tenant_id, bucket,
                  GROUPING SETS ((), (action), (severity), (rt), (oc), (us), (rt, ri))
    ), counted AS (
        UPDATE event_rollups r SET n = r.n - d.n
          FROM counts d
         WHERE r.tenant_id = d.tenant_id AND r.dim = d.dim AND r.bucket = d.bucket
           AND r.k1 = d.k1 AND r.k2 = d.k2
        RETURNING r.tenant_id, r.dim, r.bucket, r.k1, r.k2, r.n
    )
    UPDATE event_rollup_heavy h SET n = c.n
      FROM counted c
     WHERE h.tenant_id = c.tenant_id AND h.dim = c.dim AND h.bucket = c.bucket
       AND h.k1 = c.k1 AND h.k2 = c.k2;
    RETURN NULL;
END;
$$;
