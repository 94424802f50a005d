-- The OpenSearch search tier (issue #21): how far each tenant's log has been indexed, and
-- which removals the index has been told about. Both are numbers and flags in the source
-- of truth, so an index can be dropped and rebuilt from here at any time.
--
-- search_index_progress.next_seq: every event of the tenant with seq < next_seq is in the
-- index and visible to searches (the indexer moves it only after a bulk request and the
-- refresh it waits for). Searches on OpenSearch use it as their snapshot watermark, so a
-- page never shows an event the index may still be missing below it. indexed_at is when
-- it last moved, for the lag in seconds.
CREATE TABLE search_index_progress (
    tenant_id   text PRIMARY KEY REFERENCES tenants (id),
    next_seq    bigint NOT NULL DEFAULT 0 CHECK (next_seq >= 0),
    indexed_at  timestamptz
);

ALTER TABLE search_index_progress ENABLE ROW LEVEL SECURITY;
ALTER TABLE search_index_progress FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON search_index_progress
    USING (tenant_id = auditline_current_tenant())
    WITH CHECK (tenant_id = auditline_current_tenant());

-- A removal (cleanup, retention, archival) is recorded with its seq ranges in the removing
-- transaction; the indexer deletes those ranges from the index and then sets this flag, in
-- its own transaction. A flag rather than a high-water mark: removals commit in any order,
-- and a restore from the archive rewrites ranges.
ALTER TABLE removed_ranges ADD COLUMN search_propagated boolean NOT NULL DEFAULT false;
CREATE INDEX removed_ranges_search_pending ON removed_ranges (tenant_id, first_seq)
    WHERE NOT search_propagated;
