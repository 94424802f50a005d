-- Per-tenant secrets: the key behind the keyed pseudonyms of masked values (issue #16;
-- the decision is written down in docs/security.md, "Pseudonyms and the tenant key").
--
-- A table of its own rather than a column of `tenants`: every tenant query (the API's
-- GET/PATCH, listings, change records) reads `tenants`, and none of them can return a key
-- it never selects. The only reader is the ingest path's masking-rules loader
-- (storage/tenants.py: masking_source). Deleting or replacing a row is the crypto-shredding
-- or rotation step of later work; today rows are only created.
--
-- The key is 32 bytes: SHA-256 over two version-4 UUIDs, which PostgreSQL draws from its
-- strong random source (244 random bits). The core server has no function returning
-- random bytes, and pgcrypto is not assumed to be installed. It is a column default so
-- that the backfill below and every new tenant (storage/tenants.py: create_tenant) get a
-- key the same way, and the key never passes through the application on creation.
CREATE TABLE tenant_secrets (
    tenant_id     text PRIMARY KEY REFERENCES tenants (id),
    pseudonym_key bytea NOT NULL
                  DEFAULT sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
                  CHECK (length(pseudonym_key) = 32),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Every tenant that exists, the platform tenant included, gets its own key (the default is
-- volatile: evaluated once per row). Before row-level security is switched on, so one
-- statement may write every tenant's row.
INSERT INTO tenant_secrets (tenant_id) SELECT id FROM tenants;

ALTER TABLE tenant_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_secrets
    USING (tenant_id = auditline_current_tenant())
    WITH CHECK (tenant_id = auditline_current_tenant());
