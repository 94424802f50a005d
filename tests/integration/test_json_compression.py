"""Migration 0013's compression of the JSON columns reaches every partition of ``events``.

The embedded server is built without lz4, so here the migration leaves pglz in place (the
function answers NULL); the same function with pglz shows that it sets the method on the
parent *and* on every existing partition (which ``ALTER TABLE`` on the parent alone does
not, in PostgreSQL 18), and that partitions created later inherit it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

JSON_COLUMNS = ("after", "before", "metadata")


def methods(conn: psycopg.Connection[tuple[object, ...]]) -> dict[tuple[str, str], str]:
    rows = conn.execute(
        """SELECT c.relname, a.attname, a.attcompression
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            WHERE (c.oid = 'events'::regclass
                   OR c.oid IN (SELECT inhrelid FROM pg_inherits
                                 WHERE inhparent = 'events'::regclass))
              AND a.attname IN ('before', 'after', 'metadata', 'message')"""
    ).fetchall()
    return {(str(r[0]), str(r[1])): str(r[2]) for r in rows}


def test_json_compression_is_set_on_every_partition_and_inherited(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        lz4 = conn.execute(
            "SELECT 'lz4' = ANY (enumvals) FROM pg_settings "
            "WHERE name = 'default_toast_compression'"
        ).fetchone()
        assert lz4 is not None
        set_by_migration = conn.execute("SELECT auditline_json_compression()").fetchone()
        assert set_by_migration == (("lz4",) if lz4[0] else (None,))
        before = methods(conn)
        assert len({table for table, _ in before}) >= 7  # the parent and the test months

        assert conn.execute("SELECT auditline_json_compression('pglz')").fetchone() == ("pglz",)
        after = methods(conn)
        assert {k: v for k, v in after.items() if k[1] in JSON_COLUMNS} == {
            k: "p" for k in before if k[1] in JSON_COLUMNS
        }
        assert {k: v for k, v in after.items() if k[1] == "message"} == {
            k: v for k, v in before.items() if k[1] == "message"
        }  # other columns are left as they were
        later = datetime.now(UTC) + timedelta(days=400)
        name = conn.execute("SELECT auditline_ensure_event_partition(%s)", (later,)).fetchone()
        assert name is not None
        assert {c: m for (t, c), m in methods(conn).items() if t == name[0]} == {
            "after": "p",
            "before": "p",
            "metadata": "p",
            "message": "",
        }
