"""The checked-in ``schema.sql`` is exactly what the migrations produce."""

from __future__ import annotations

import difflib

import pytest

from auditline.storage.embedded import EmbeddedPostgres
from tests.schema_dump import SCHEMA_FILE, dump_schema


def test_migrations_produce_the_checked_in_schema(pg_server: EmbeddedPostgres) -> None:
    checked_in = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            checked_in.splitlines(keepends=True),
            dump_schema(pg_server).splitlines(keepends=True),
            fromfile=f"{SCHEMA_FILE.name} (checked in)",
            tofile=f"{SCHEMA_FILE.name} (from the migrations)",
        )
    )
    if diff:
        # pytest.fail rather than assert: an assert would print the diff twice, the second
        # time as one long escaped string.
        pytest.fail(f"{SCHEMA_FILE} is stale; run `make schema` and commit it.\n{diff}")
