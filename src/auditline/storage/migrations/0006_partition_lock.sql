-- Partitions are created under the migration runner's lock.
--
-- 0001 made concurrent callers harmless for the *same* month with a lock per partition.
-- That is not enough: PostgreSQL also refuses two catalog updates of the same row at once
-- ("tuple concurrently updated"), and creating the first partition of `events` updates
-- the parent's row, as does the GRANT on every table that each migration run ends with.
-- The first start of a server with two API processes failed so: one process created the
-- first month while the other, finding no migration left to apply, re-granted the
-- application role. Creating a partition now takes the advisory lock every migration run
-- holds (storage/migrations.py, LOCK_KEY), so schema changes take turns, whatever month
-- and whichever process. A migration run that creates partitions itself already holds it.
CREATE OR REPLACE FUNCTION auditline_ensure_event_partition(ts timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    month_start timestamptz := date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    month_end   timestamptz := month_start + interval '1 month';
    part_name   text := format('events_y%sm%s', to_char(month_start AT TIME ZONE 'UTC', 'YYYY'),
                                                to_char(month_start AT TIME ZONE 'UTC', 'MM'));
BEGIN
    PERFORM pg_advisory_xact_lock(71834473681996);  -- 0x41554449544C, "AUDITL"
    IF to_regclass('public.' || part_name) IS NULL THEN
        EXECUTE format('CREATE TABLE public.%I PARTITION OF public.events FOR VALUES FROM (%L) TO (%L)',
                       part_name, month_start, month_end);
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', part_name);
    END IF;
    RETURN part_name;
END;
$$;
