"""``auditline archive``: run, list, restore, export and verify from the command line."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import orjson
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from auditline.cli import main
from auditline.lifecycle.archive.manifest import day_prefix
from auditline.storage.database import Connection
from tests.integration.archive_fixtures import OLD_DAY, drafts, snapshot, write
from tests.integration.conftest import ACME, GLOBEX


async def test_archive_commands_round_trip_a_day(
    pool: AsyncConnectionPool[Connection],
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await write(pool, ACME, drafts(OLD_DAY, 120))
    await write(pool, GLOBEX, drafts(OLD_DAY, 60))
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE tenants SET archive_after_days = 30 WHERE id = 'acme'")
    before = snapshot(database_url, ACME, OLD_DAY)
    globex = snapshot(database_url, GLOBEX)
    monkeypatch.setenv("AUDITLINE_DATABASE__URL", database_url)
    data_dir = ["--data-dir", str(tmp_path / "data")]

    async def run(*args: str) -> int:
        return await asyncio.to_thread(main, ["archive", *args, *data_dir])

    assert await run("run") == 0
    assert f"acme {OLD_DAY}: 120 archived, 120 removed" in capsys.readouterr().out
    manifest_path = tmp_path / "data" / "archive" / day_prefix(ACME, OLD_DAY) / "manifest.json"
    manifest = orjson.loads(manifest_path.read_bytes())
    assert manifest["rows"] == 120

    assert await run("list", "--tenant", "acme") == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1
    assert listed[0].startswith(f"{OLD_DAY}         120 events")
    assert await run("list", "--tenant", "globex") == 0
    assert capsys.readouterr().out == ""

    assert snapshot(database_url, ACME, OLD_DAY)["events"] == []  # removed by the run

    day = OLD_DAY.isoformat()
    assert await run("restore", "--tenant", "acme", "--from", day, "--to", day) == 0
    assert "restored 120 events of 1 archived days" in capsys.readouterr().out
    restored = snapshot(database_url, ACME, OLD_DAY)
    assert restored["events"] == before["events"]
    assert restored["ids"] == before["ids"]
    assert restored["rollups"] == before["rollups"]
    assert await run("restore", "--tenant", "acme", "--from", day, "--to", day) == 0
    assert "restored 0 events" in capsys.readouterr().out
    assert snapshot(database_url, ACME, OLD_DAY) == restored
    assert snapshot(database_url, GLOBEX) == globex

    out = tmp_path / "export"
    assert await run("export", "--tenant", "acme", "--from", day, "--to", day,
                     "--out", str(out)) == 0  # fmt: skip
    [entry] = manifest["files"]
    exported = out / day_prefix(ACME, OLD_DAY) / entry["name"]
    assert hashlib.sha256(exported.read_bytes()).hexdigest() == entry["sha256"]
    assert orjson.loads((exported.parent / "manifest.json").read_bytes()) == manifest
    with psycopg.connect(database_url) as conn:  # reads of the log are recorded
        [record] = conn.execute(
            "SELECT user_id, metadata->>'via', metadata->'rows' FROM events "
            "WHERE tenant_id = 'acme' AND action = 'EXPORT' AND resource_type = 'audit_log'"
        ).fetchall()
    assert record[1:] == ("archive", 120)
    assert record[0].startswith("cli")

    assert await run("verify", "--tenant", "acme") == 0
    archived = tmp_path / "data" / "archive" / day_prefix(ACME, OLD_DAY) / entry["name"]
    archived.write_bytes(archived.read_bytes()[:-1] + b"\x00")
    assert await run("verify", "--tenant", "acme") == 1
    assert "does not match its manifest" in capsys.readouterr().err
    assert await run("restore", "--tenant", "nobody", "--from", day, "--to", day) == 1
    assert await run("restore", "--tenant", "acme", "--from", day, "--to", "2000-01-01") == 2
