-- Identity and access control: the platform tenant, API keys, shared rate-limit buckets.
-- Design notes live in docs/security.md.

-- The platform tenant: its log holds what cannot be attributed to a trusted tenant (failed
-- authentication, attempts on tenants not granted) and platform-level changes (tenant
-- creation). It is a system tenant: hidden from tenant listings, readable by platform admins
-- only, and never written through the ingest API. Creating it here, before any API exists,
-- means no client tenant can ever have taken its id.
ALTER TABLE tenants ADD COLUMN system boolean NOT NULL DEFAULT false;

INSERT INTO tenants (id, name, retention_days, system)
VALUES ('platform', 'Auditline platform log', 365, true);

-- tenant_log_heads is FORCEd under row-level security, which binds the migrating role too
-- unless it is a superuser; point the policy at the new tenant for this transaction.
SELECT set_config('auditline.tenant_id', 'platform', true);
INSERT INTO tenant_log_heads (tenant_id) VALUES ('platform');
SELECT set_config('auditline.tenant_id', '', true);

-- API keys: a service credential bound to one tenant. Only a SHA-256 hash of the whole key
-- is stored; `prefix` is the visible, unique public part used to find the row.
CREATE TABLE api_keys (
    tenant_id    text NOT NULL REFERENCES tenants (id),
    id           uuid NOT NULL,
    prefix       text NOT NULL UNIQUE CHECK (prefix ~ '^alk_[a-z2-7]{12}$'),
    secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    scopes       text[] NOT NULL
                 CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['logs:write', 'logs:read']),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    revoked_by   text,
    last_used_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);

-- Row-level security for listing, creating and revoking (always in a tenant transaction).
-- Not FORCEd: authentication must find a key before any tenant is known, which the
-- SECURITY DEFINER function below does as the table owner. The application role stays
-- bound by the policy.
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (tenant_id = auditline_current_tenant())
    WITH CHECK (tenant_id = auditline_current_tenant());

-- The one cross-tenant read authentication needs: the key row for an exact prefix. It returns
-- the hash for comparison in the application, never a list.
CREATE FUNCTION auditline_api_key_by_prefix(key_prefix text)
RETURNS TABLE (tenant_id text, id uuid, secret_hash bytea, name text, scopes text[],
               expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT k.tenant_id, k.id, k.secret_hash, k.name, k.scopes, k.expires_at, k.revoked_at,
           k.last_used_at
      FROM public.api_keys k
     WHERE k.prefix = key_prefix
$$;
REVOKE ALL ON FUNCTION auditline_api_key_by_prefix(text) FROM PUBLIC;

-- Token buckets shared by every API process (rate_limits.backend = postgres). UNLOGGED: no
-- WAL, not replicated, emptied after a crash, which only refills every bucket. Keyed by
-- tenant id or hashed principal id; no tenant data, so no row-level security.
CREATE UNLOGGED TABLE rate_limit_buckets (
    key        text PRIMARY KEY,
    tokens     double precision NOT NULL,
    updated_at timestamptz NOT NULL
) WITH (fillfactor = 70);
