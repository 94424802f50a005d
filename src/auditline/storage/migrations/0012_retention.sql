-- Retention and cleanup: legal holds, the record of removed sequence numbers, and dropping
-- a whole month of events (issue 18; docs/operations.md, "Retention and cleanup").
--
-- A tenant under legal hold keeps every event: cleanup answers 409 and retention skips it.
-- A column rather than a member of `settings`, so that every deletion can lock the tenant
-- row (FOR SHARE) and read it in the transaction that deletes: a hold set while a cleanup
-- runs stops it at its next batch, never after.
ALTER TABLE tenants ADD COLUMN legal_hold boolean NOT NULL DEFAULT false;

-- Which sequence numbers left a tenant's log on purpose, by whom and why. A gap in a
-- tenant's `seq` is either a removal listed here or tampering: the integrity work checks
-- one against the other. Each row is written in the transaction that deleted the events
-- (with the record of the deletion in the tenant's own log), so neither exists without the
-- other. Ranges never overlap: a number is removed once.
--
-- `ids_removed` is false only after a partition drop (storage/retention.py): the month's
-- events went with their partition at once, and their `event_ids` rows follow in bounded
-- batches found by these ranges; the batched delete removes both together and writes true.
CREATE TABLE removed_ranges (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    first_seq   bigint NOT NULL CHECK (first_seq >= 0),
    last_seq    bigint NOT NULL,
    events      bigint NOT NULL CHECK (events = last_seq - first_seq + 1),
    removed_at  timestamptz NOT NULL DEFAULT now(),
    reason      text NOT NULL CHECK (reason IN ('cleanup', 'retention', 'archive')),
    actor       text NOT NULL,
    job_id      uuid,
    ids_removed boolean NOT NULL DEFAULT true,
    PRIMARY KEY (tenant_id, first_seq),
    CHECK (last_seq >= first_seq)
);

CREATE INDEX removed_ranges_ids_pending ON removed_ranges (tenant_id, first_seq)
    WHERE NOT ids_removed;

ALTER TABLE removed_ranges ENABLE ROW LEVEL SECURITY;
ALTER TABLE removed_ranges FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON removed_ranges
    USING (tenant_id = auditline_current_tenant())
    WITH CHECK (tenant_id = auditline_current_tenant());

-- The name of the month partition starting at *month_start*, or NULL if there is none;
-- refuses anything but the start of a month.
CREATE FUNCTION auditline_event_partition(month_start timestamptz) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public AS $$
DECLARE
    part_name text := format('events_y%sm%s', to_char(month_start AT TIME ZONE 'UTC', 'YYYY'),
                                              to_char(month_start AT TIME ZONE 'UTC', 'MM'));
BEGIN
    IF month_start <> date_trunc('month', month_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' THEN
        RAISE EXCEPTION 'not the start of a month: %', month_start;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'public.events'::regclass AND c.relname = part_name) THEN
        RETURN NULL;
    END IF;
    RETURN part_name;
END;
$$;

-- Locks the month partition against inserts and deletes until the transaction ends (a
-- late event for that month waits); returns its name, or NULL if there is none. SECURITY
-- DEFINER: the application role has privileges on the parent table only. The caller's
-- lock_timeout bounds the wait.
CREATE FUNCTION auditline_lock_event_partition(month_start timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    part_name text := auditline_event_partition(month_start);
BEGIN
    IF part_name IS NOT NULL THEN
        EXECUTE format('LOCK TABLE public.%I IN SHARE MODE', part_name);
    END IF;
    RETURN part_name;
END;
$$;

-- Drops the month partition starting at *month_start*, if it exists; returns its name or
-- NULL. SECURITY DEFINER, as creating one is (0001): the application role does not own the
-- table. Only partitions of `events` can be named, by their month, never an arbitrary
-- table. Takes the lock every schema change takes (0006), and the caller must already hold
-- what it relies on: the partition locked against inserts and each tenant's rows accounted
-- for (storage/retention.py: drop_partition). Dropping a partition locks the parent table
-- exclusively until the caller commits, so the caller commits at once.
CREATE FUNCTION auditline_drop_event_partition(month_start timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    part_name text;
BEGIN
    PERFORM pg_advisory_xact_lock(71834473681996);  -- 0x41554449544C, "AUDITL"
    part_name := auditline_event_partition(month_start);
    IF part_name IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('DROP TABLE public.%I', part_name);
    RETURN part_name;
END;
$$;
