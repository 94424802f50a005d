-- Background work (issue #18): the visible jobs, the PostgreSQL queue, the outbox relayed
-- to Amazon SQS, and the periodic schedules. Design notes live in docs/architecture.md
-- ("Jobs").

-- A job as operators and tenant admins see it. tenant_id is NULL for platform work
-- (partition upkeep, retention over every tenant); such jobs belong to the platform tenant
-- for row-level security and are shown to platform admins only.
CREATE TABLE jobs (
    id          uuid PRIMARY KEY,
    tenant_id   text REFERENCES tenants (id),
    kind        text NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    payload     jsonb NOT NULL DEFAULT '{}',
    progress    jsonb,
    result      jsonb,
    error       text,
    attempts    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at  timestamptz,
    finished_at timestamptz,
    -- While running: until when the worker's lease holds (extended by its heartbeat). A
    -- second delivery of the same task (SQS may deliver twice) waits while it holds; a
    -- dead worker's lease runs out with its message's visibility.
    lease_until timestamptz,
    CHECK (tenant_id IS DISTINCT FROM 'platform')
);
CREATE INDEX jobs_tenant_created ON jobs (tenant_id, created_at DESC, id DESC);
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);

-- Row-level security as for api_keys: ENABLEd, not FORCEd, so the SECURITY DEFINER function
-- below (a platform admin's view over every tenant) reads as the table owner, while the
-- application role stays bound by the policy. A platform job (NULL tenant) is visible when
-- the transaction is bound to the platform tenant.
ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON jobs
    USING (tenant_id = auditline_current_tenant()
           OR (tenant_id IS NULL AND auditline_current_tenant() = 'platform'))
    WITH CHECK (tenant_id = auditline_current_tenant()
                OR (tenant_id IS NULL AND auditline_current_tenant() = 'platform'));

-- Every tenant's jobs, for platform admins only (the API checks the caller before calling
-- it): one job by id (p_id), or a page newest first after (p_after_created, p_after_id),
-- optionally filtered by kind and status.
CREATE FUNCTION auditline_jobs_all(p_id uuid, p_kind text, p_status text,
                                   p_after_created timestamptz, p_after_id uuid, p_limit integer)
RETURNS SETOF jobs
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT * FROM public.jobs j
     WHERE (p_id IS NULL OR j.id = p_id)
       AND (p_kind IS NULL OR j.kind = p_kind)
       AND (p_status IS NULL OR j.status = p_status)
       AND (p_after_created IS NULL OR (j.created_at, j.id) < (p_after_created, p_after_id))
     ORDER BY j.created_at DESC, j.id DESC
     LIMIT p_limit
$$;

-- The PostgreSQL queue backend, with SQS semantics: a message is invisible until
-- visible_at (sent with a delay, received, or backing off after a failure); each receive
-- counts and draws a new receipt, so only the latest receiver may delete or extend it;
-- after max receives it is dead-lettered (dead_at set) instead of delivered again.
-- Internal to the service: no tenant reads it, so no row-level security. job_tenant is
-- the job's tenant carried to the receiver (which binds row-level security to it for the
-- jobs row); deliberately not named tenant_id, the mark of tenant data that
-- tests/integration/test_rls.py requires a policy for.
CREATE TABLE job_queue (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        uuid NOT NULL,
    kind          text NOT NULL,
    job_tenant    text,
    payload       jsonb NOT NULL,
    visible_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    receive_count integer NOT NULL DEFAULT 0,
    receipt       uuid,
    dead_at       timestamptz,
    error         text,
    sent_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX job_queue_ready ON job_queue (visible_at, id) WHERE dead_at IS NULL;
CREATE INDEX job_queue_dead ON job_queue (dead_at) WHERE dead_at IS NOT NULL;

-- The transactional outbox of the SQS backend: written in the same transaction as the job
-- (and the caller's write), relayed to SQS by the workers and deleted once sent. A crash
-- between the send and the delete sends the message again; tasks are idempotent.
CREATE TABLE job_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     uuid NOT NULL,
    body       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Periodic tasks: each due row is claimed with FOR UPDATE SKIP LOCKED, its job submitted
-- and next_run_at moved on in one transaction, so a run happens once whatever the number
-- of schedulers, and a restart resumes from the stored next_run_at.
CREATE TABLE schedules (
    name             text PRIMARY KEY,
    kind             text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}',
    interval_seconds double precision NOT NULL CHECK (interval_seconds > 0),
    next_run_at      timestamptz NOT NULL,
    last_run_at      timestamptz,
    last_job_id      uuid
);
