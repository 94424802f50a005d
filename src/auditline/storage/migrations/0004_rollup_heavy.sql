-- Heavy hitters of the user and resource rollups, so that "top users" and "top resources"
-- over a long range do not have to add up every (hour, key) row of it.
--
-- Users and resources are long-tailed: in the benchmark's largest tenant a week holds
-- 277 k (hour, resource) rollup rows for 459 k events, and summing them all took most of
-- a 400 ms stats answer. Almost all of those rows count 1, 2 or 3 events. This table
-- mirrors, with the exact same count, every user/resource rollup row whose count reached
-- auditline_heavy_min() (4): about 5 % of the rows, but the ones the top of the list is
-- made of.
--
-- The invariant the reader relies on (storage/stats.py): a user/resource rollup row with
-- n >= auditline_heavy_min() has a row here with the same n; a rollup row without one
-- here has n < auditline_heavy_min(). So a key that is in no heavy row over a range has
-- at most (heavy_min - 1) events in each hour of it, which bounds how high it can rank;
-- keys that might rank are counted exactly. Rows whose count later drops below the
-- threshold (retention deletes) stay, still exact.
--
-- Cost: one more statement per rollup upsert, touching only the keys already heavy in
-- that hour (a few dozen per 1,000-event batch); measured in docs/benchmarks/search.md.

CREATE FUNCTION auditline_heavy_min() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 4::bigint';

CREATE TABLE event_rollup_heavy (
    tenant_id text NOT NULL,
    dim       text NOT NULL CHECK (dim IN ('user', 'resource')),
    bucket    timestamptz NOT NULL,
    k1        text NOT NULL,
    k2        text NOT NULL,
    n         bigint NOT NULL,
    PRIMARY KEY (tenant_id, dim, bucket, k1, k2)
);

ALTER TABLE event_rollup_heavy ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_rollup_heavy FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON event_rollup_heavy
    USING (tenant_id = auditline_current_tenant())
    WITH CHECK (tenant_id = auditline_current_tenant());

-- Events without a user or without a resource are not ranked, so their rows are not kept.
CREATE FUNCTION auditline_is_heavy(p_dim text, p_k1 text, p_k2 text, p_n bigint)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_n >= auditline_heavy_min()
       AND ((p_dim = 'user' AND p_k1 <> '') OR (p_dim = 'resource' AND p_k2 <> ''))
$$;

CREATE OR REPLACE FUNCTION auditline_rollup_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    WITH counted AS (
        INSERT INTO event_rollups AS r (tenant_id, dim, bucket, k1, k2, n)
        SELECT x.tenant_id, x.dim, x.bucket, x.k1, x.k2, count(*)
          FROM new_events e,
               LATERAL auditline_rollup_rows(e.tenant_id, e.timestamp, e.action, e.severity,
                                             e.resource_type, e.outcome, e.user_id,
                                             e.resource_id) x
         GROUP BY 1, 2, 3, 4, 5
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
    WITH counted AS (
        UPDATE event_rollups r SET n = r.n - d.n
          FROM (SELECT x.tenant_id, x.dim, x.bucket, x.k1, x.k2, count(*) AS n
                  FROM old_events e,
                       LATERAL auditline_rollup_rows(e.tenant_id, e.timestamp, e.action,
                                                     e.severity, e.resource_type, e.outcome,
                                                     e.user_id, e.resource_id) x
                 GROUP BY 1, 2, 3, 4, 5) d
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

-- Backfill from the rollups stored before this migration.
INSERT INTO event_rollup_heavy (tenant_id, dim, bucket, k1, k2, n)
SELECT tenant_id, dim, bucket, k1, k2, n
  FROM event_rollups
 WHERE auditline_is_heavy(dim, k1, k2, n);
