-- Rollup maintenance takes turns per tenant.
--
-- The rollup triggers upsert a few hundred rows per statement, in the order their hash
-- aggregate yields them, so two statements of one tenant running at once could lock the
-- same rows in opposite orders and deadlock. The service never runs two at once (its
-- inserts hold the tenant's log head until they commit), but any other writer can: the
-- benchmark's raw COPY from four connections did ("deadlock detected ... while inserting
-- index tuple in relation event_rollups"), and so could a retention delete beside ingest.
-- Every statement now first takes a transaction-level advisory lock per tenant it touches,
-- in tenant order; they share the hour's 'total' row anyway, so this costs no concurrency.
--
-- The locking triggers are named to fire first: PostgreSQL fires the triggers of one
-- event in alphabetical order of their names ('events_rollup_0lock_*' < 'events_rollup_*').
-- Advisory keys: (namespace, hash of the tenant); two-int keys never meet the migration
-- lock's bigint key.
-- Both triggers name their transition table `changed_events`, so one query serves both.
CREATE FUNCTION auditline_rollup_lock() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1380928587, hashtext(tenant_id))  -- "ROLK"
       FROM (SELECT DISTINCT tenant_id FROM changed_events ORDER BY 1) t;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_rollup_0lock_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS changed_events
    FOR EACH STATEMENT EXECUTE FUNCTION auditline_rollup_lock();

CREATE TRIGGER events_rollup_0lock_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS changed_events
    FOR EACH STATEMENT EXECUTE FUNCTION auditline_rollup_lock();
