-- Rollup counts are appended by the write path and folded into event_rollups in the
-- background, so that no commit updates a row every other commit also updates.
--
-- Until now the insert trigger upserted the hour's rollup rows in every write transaction:
-- the hour's 'total' row, its severity and outcome rows and the busiest keys were updated by
-- nearly every commit. An update leaves the row's previous version behind, and while any
-- snapshot older than it is open (pg_dump for a backup's whole run, a long export or report,
-- a client idle in a transaction) PostgreSQL may not prune it; each later update of that row
-- then walks every version kept. bench.horizon measured it: at 1,000 single events/s, one
-- REPEATABLE READ transaction held for 30 s took ingest p99 from 35-42 ms to 7.0-7.8 s, and
-- with the rollup triggers disabled the same held snapshot changed nothing (19-29 ms).
--
-- Now the triggers only INSERT their counts (positive for inserted events, negative for
-- deleted ones) into event_rollup_deltas (auditline_rollup_deltas), which no statement
-- updates. auditline_rollup_fold moves a tenant's deltas into event_rollups and
-- event_rollup_heavy (the same upserts the triggers made, now one per key per fold instead
-- of one per key per commit); the service runs it every ingest.rollup_fold_seconds
-- (indexing/rollups.py). Readers add both tables up (event_rollup_rows), so every count
-- stays exact in any snapshot, folded or not.
--
-- The heavy hitters' invariant (0004) now holds for the folded rows: a folded user or
-- resource row with n >= auditline_heavy_min() has a heavy row with the same n. Readers
-- treat every key with an unfolded delta in the range as a candidate counted exactly
-- (storage/search/stats.py), so the bound they prove with stays valid before a fold.
--
-- The per-tenant advisory lock of 0007 ("ROLK") existed to keep two upserting statements of
-- one tenant from deadlocking; inserts cannot deadlock, so the write path no longer takes it.
-- The fold takes it (without waiting: another process is folding that tenant), and so does
-- forgetting a dropped month's rollups, so that a fold in flight cannot write them back.

CREATE TABLE event_rollup_deltas (
    tenant_id text NOT NULL,
    dim       text NOT NULL,
    bucket    timestamptz NOT NULL,
    k1        text NOT NULL,
    k2        text NOT NULL,
    n         bigint NOT NULL
);
CREATE INDEX event_rollup_deltas_key ON event_rollup_deltas (tenant_id, dim, bucket, k1, k2);

-- ENABLEd, not FORCEd, as jobs (0011): auditline_rollup_pending() reads every tenant's
-- pending deltas as the owner, while the application role stays bound by the policy.
ALTER TABLE event_rollup_deltas ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON event_rollup_deltas
    USING (tenant_id = auditline_current_tenant())
    WITH CHECK (tenant_id = auditline_current_tenant());

-- What readers add up: the folded rows and the deltas not yet folded (several rows per key
-- while unfolded: sum them). Runs with the reader's row-level security.
CREATE VIEW event_rollup_rows WITH (security_invoker = true) AS
    SELECT tenant_id, dim, bucket, k1, k2, n FROM event_rollups
    UNION ALL
    SELECT tenant_id, dim, bucket, k1, k2, n FROM event_rollup_deltas;

-- One function for both triggers: each names its transition table changed_events (as the
-- lock triggers of 0007 did), and a delete counts negatively.
CREATE FUNCTION auditline_rollup_deltas() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    INSERT INTO event_rollup_deltas (tenant_id, dim, bucket, k1, k2, n)
    SELECT tenant_id,
           CASE GROUPING(action, severity, rt, oc, us, ri)
                WHEN 63 THEN 'total' WHEN 31 THEN 'action' WHEN 47 THEN 'severity'
                WHEN 55 THEN 'resource_type' WHEN 59 THEN 'outcome' WHEN 61 THEN 'user'
                WHEN 54 THEN 'resource' END,
           bucket,
           coalesce(action, severity, rt, oc, us, ''),
           coalesce(ri, ''),
           CASE TG_OP WHEN 'DELETE' THEN -count(*) ELSE count(*) END
      FROM (SELECT tenant_id, date_trunc('hour', timestamp, 'UTC') AS bucket, action,
                   severity::text AS severity, coalesce(resource_type, '') AS rt,
                   coalesce(outcome, '') AS oc, coalesce(user_id, '') AS us,
                   coalesce(resource_id, '') AS ri
              FROM changed_events
             WHERE resource_type IS DISTINCT FROM 'audit_log') e
     GROUP BY tenant_id, bucket,
              GROUPING SETS ((), (action), (severity), (rt), (oc), (us), (rt, ri));
    RETURN NULL;
END;
$$;

DROP TRIGGER events_rollup_insert ON events;
DROP TRIGGER events_rollup_delete ON events;
CREATE TRIGGER events_rollup_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS changed_events
    FOR EACH STATEMENT EXECUTE FUNCTION auditline_rollup_deltas();
CREATE TRIGGER events_rollup_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS changed_events
    FOR EACH STATEMENT EXECUTE FUNCTION auditline_rollup_deltas();
DROP FUNCTION auditline_rollup_insert();
DROP FUNCTION auditline_rollup_delete();

DROP TRIGGER events_rollup_0lock_insert ON events;
DROP TRIGGER events_rollup_0lock_delete ON events;
DROP FUNCTION auditline_rollup_lock();

-- Moves *p_tenant*'s deltas into event_rollups and keeps event_rollup_heavy exact for the
-- keys they touched (upserted when heavy, updated when already there: a count that fell
-- below the threshold stays exact, as 0004 says). Returns the deltas moved, or -1 when
-- another transaction is folding this tenant. Call it bound to the tenant (row-level
-- security); one statement, so a delta is moved exactly once and every sum lands with it.
CREATE FUNCTION auditline_rollup_fold(p_tenant text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    moved bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1380928587, hashtext(p_tenant)) THEN  -- "ROLK"
        RETURN -1;
    END IF;
    WITH taken AS (
        DELETE FROM event_rollup_deltas WHERE tenant_id = p_tenant
        RETURNING dim, bucket, k1, k2, n
    ), sums AS (
        SELECT dim, bucket, k1, k2, sum(n)::bigint AS n FROM taken
         GROUP BY dim, bucket, k1, k2 HAVING sum(n) <> 0
    ), counted AS (
        INSERT INTO event_rollups AS r (tenant_id, dim, bucket, k1, k2, n)
        SELECT p_tenant, dim, bucket, k1, k2, n FROM sums ORDER BY dim, bucket, k1, k2
        ON CONFLICT (tenant_id, dim, bucket, k1, k2) DO UPDATE SET n = r.n + excluded.n
        RETURNING r.tenant_id, r.dim, r.bucket, r.k1, r.k2, r.n
    ), heavy AS (
        INSERT INTO event_rollup_heavy AS h (tenant_id, dim, bucket, k1, k2, n)
        SELECT c.tenant_id, c.dim, c.bucket, c.k1, c.k2, c.n
          FROM counted c
         WHERE auditline_is_heavy(c.dim, c.k1, c.k2, c.n)
            OR EXISTS (SELECT FROM event_rollup_heavy x
                        WHERE x.tenant_id = c.tenant_id AND x.dim = c.dim
                          AND x.bucket = c.bucket AND x.k1 = c.k1 AND x.k2 = c.k2)
        ON CONFLICT (tenant_id, dim, bucket, k1, k2) DO UPDATE SET n = excluded.n
    )
    SELECT count(*) INTO moved FROM taken;
    RETURN moved;
END;
$$;

-- The tenants with deltas to fold, over every tenant (the folder is platform work; it
-- learns ids only, and folds each one bound to it).
CREATE FUNCTION auditline_rollup_pending() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT DISTINCT tenant_id FROM public.event_rollup_deltas
$$;

-- The counts made so far stay where they are: event_rollups already holds them, folded.
