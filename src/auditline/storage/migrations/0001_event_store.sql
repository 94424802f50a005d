-- The event store: tenants, the partitioned events table, the id index and row-level security.
-- Design notes live in docs/architecture.md ("The event store").

CREATE TYPE severity AS ENUM ('INFO', 'WARNING', 'ERROR', 'CRITICAL');

CREATE TABLE tenants (
    id                 text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    retention_days     integer NOT NULL DEFAULT 90 CHECK (retention_days BETWEEN 1 AND 36500),
    archive_after_days integer CHECK (archive_after_days BETWEEN 1 AND 36500),
    settings           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- The head of each tenant's log: the next sequence number. Writers lock this row inside the
-- writing transaction, so numbers are gap-free (a rollback releases them unused) and a
-- verifier can tell a missing event from one that was never written.
CREATE TABLE tenant_log_heads (
    tenant_id text PRIMARY KEY REFERENCES tenants (id),
    next_seq  bigint NOT NULL DEFAULT 0 CHECK (next_seq >= 0)
);

-- One narrow row per stored event. The primary key enforces idempotency per tenant, which the
-- partitioned events table cannot (a unique index there must include the partition key), and
-- turns GET /logs/{id} into one probe plus one pruned partition lookup. seq is unique per
-- tenant: the event's leaf index in the tenant's Merkle tree.
CREATE TABLE event_ids (
    tenant_id text NOT NULL,
    id        uuid NOT NULL,
    seq       bigint NOT NULL,
    timestamp timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, seq)
);

CREATE TABLE events (
    tenant_id      text NOT NULL,
    id             uuid NOT NULL,
    seq            bigint NOT NULL,
    timestamp      timestamptz NOT NULL,
    received_at    timestamptz NOT NULL,
    user_id        text,
    actor_type     text,
    session_id     text,
    action         text NOT NULL,
    resource_type  text,
    resource_id    text,
    ip_address     inet,
    user_agent     text,
    before         jsonb,
    after          jsonb,
    changed_fields text[],
    metadata       jsonb NOT NULL DEFAULT '{}',
    severity       severity NOT NULL DEFAULT 'INFO',
    message        text,
    request_id     text,
    outcome        text,
    leaf_hash      bytea NOT NULL CHECK (length(leaf_hash) = 32),
    search_vector  tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, coalesce(message, '')), 'A')
        || setweight(jsonb_to_tsvector('simple'::regconfig, metadata, '["string", "numeric"]'), 'B')
    ) STORED,
    PRIMARY KEY (tenant_id, timestamp, id)
) PARTITION BY RANGE (timestamp);

-- Tenant first in every index that serves tenant queries. The primary key above serves
-- time-window scans and keyset paging over (timestamp, id) in both directions.
CREATE INDEX events_tenant_user_time ON events (tenant_id, user_id, timestamp);
CREATE INDEX events_tenant_resource_time ON events (tenant_id, resource_type, resource_id, timestamp);
CREATE INDEX events_tenant_action_time ON events (tenant_id, action, timestamp);
CREATE INDEX events_tenant_request ON events (tenant_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX events_search ON events USING gin (search_vector);

-- Creates the month partition holding *ts* if it is missing. SECURITY DEFINER so the
-- application role (which may not own the table) can call it; an advisory lock makes
-- concurrent callers for the same month harmless.
CREATE FUNCTION auditline_ensure_event_partition(ts timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    month_start timestamptz := date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    month_end   timestamptz := month_start + interval '1 month';
    part_name   text := format('events_y%sm%s', to_char(month_start AT TIME ZONE 'UTC', 'YYYY'),
                                                to_char(month_start AT TIME ZONE 'UTC', 'MM'));
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('auditline.partition.' || part_name));
    IF to_regclass('public.' || part_name) IS NULL THEN
        EXECUTE format('CREATE TABLE public.%I PARTITION OF public.events FOR VALUES FROM (%L) TO (%L)',
                       part_name, month_start, month_end);
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', part_name);
    END IF;
    RETURN part_name;
END;
$$;

-- Row-level security: every row is visible only when the transaction's tenant setting names
-- its tenant. FORCE applies it to the table owner too; only superusers and roles with
-- BYPASSRLS (maintenance tasks) pass through.
CREATE FUNCTION auditline_current_tenant() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('auditline.tenant_id', true), '') $$;

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON events
    USING (tenant_id = auditline_current_tenant())
    WITH CHECK (tenant_id = auditline_current_tenant());

ALTER TABLE event_ids ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_ids FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON event_ids
    USING (tenant_id = auditline_current_tenant())
    WITH CHECK (tenant_id = auditline_current_tenant());

ALTER TABLE tenant_log_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_log_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_log_heads
    USING (tenant_id = auditline_current_tenant())
    WITH CHECK (tenant_id = auditline_current_tenant());
