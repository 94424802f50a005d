-- Tamper evidence (issue #19): each tenant's events are an append-only Merkle log (RFC 9162)
-- whose leaf i is the event with seq i. The sealer (evidence/sealer.py) stores what proofs
-- need and a signed checkpoint for every tree size it reaches.
--
-- merkle_tiles holds the tree's complete-subtree hashes grouped as C2SP tlog-tiles
-- (integrity/tiles.py): one row per (tenant, tile level, tile index), at most 256 hashes of
-- 32 bytes. A tile only grows; a partial one is rewritten with its longer content, and its
-- first w hashes never change, so one row serves every tree size sealed so far.
--
-- checkpoints keeps every signed tree head (C2SP tlog-checkpoint in a signed note). None is
-- ever updated or deleted: a verifier holding an older one asks for a consistency proof to a
-- newer one. Nothing here is trusted by a verifier: an administrator can rewrite these rows,
-- but not sign a new checkpoint (the key is outside the database), and a rewritten tile
-- yields proofs that do not verify against a signed root.
CREATE TABLE merkle_tiles (
    tenant_id  text   NOT NULL REFERENCES tenants (id),
    level      integer NOT NULL CHECK (level >= 0),
    idx        bigint  NOT NULL CHECK (idx >= 0),
    hashes     bytea   NOT NULL
               CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),
    PRIMARY KEY (tenant_id, level, idx)
);

CREATE TABLE checkpoints (
    tenant_id  text        NOT NULL REFERENCES tenants (id),
    tree_size  bigint      NOT NULL CHECK (tree_size >= 0),
    root_hash  bytea       NOT NULL CHECK (length(root_hash) = 32),
    note       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, tree_size)
);

ALTER TABLE merkle_tiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE merkle_tiles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON merkle_tiles
    USING (tenant_id = auditline_current_tenant())
    WITH CHECK (tenant_id = auditline_current_tenant());

ALTER TABLE checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON checkpoints
    USING (tenant_id = auditline_current_tenant())
    WITH CHECK (tenant_id = auditline_current_tenant());
