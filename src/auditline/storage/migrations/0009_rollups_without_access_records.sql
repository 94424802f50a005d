-- The rollups count the tenant's activity, not the service's own records of reads.
--
-- Every read of a log (get, search, export, stats) is recorded in it as an event with
-- resource_type 'audit_log' (a type clients cannot send). Searches, exports and statistics
-- leave those records out unless asked (search/model.py, SearchQuery.access_included), so
-- the hourly rollups that statistics read must not count them either: the two triggers of
-- 0008 skip them, and the counts already made are taken back below. Statistics that include
-- access records count the events instead (storage/search/stats.py).
--
-- tests/integration/test_rollup_recount.py checks both triggers against a recount.

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
                  FROM new_events
                 WHERE resource_type IS DISTINCT FROM 'audit_log') e
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
                  FROM old_events
                 WHERE resource_type IS DISTINCT FROM 'audit_log') e
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

-- Take back what the triggers counted of the access records already stored: the same
-- counting as the delete trigger's, over those records.
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
                   severity::text AS severity, resource_type AS rt,
                   coalesce(outcome, '') AS oc, coalesce(user_id, '') AS us,
                   coalesce(resource_id, '') AS ri
              FROM events
             WHERE resource_type = 'audit_log') e
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
