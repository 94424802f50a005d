"""Backup and restore of a whole installation, against real embedded PostgreSQL servers.

Each installation is a data dir whose server is started by the product's own code
(``open_services`` / ``auditline`` commands through ``runtime.database``). What "restored"
means is checked exhaustively: every row of every table (events, tenants, API keys, log
heads, rollups, secrets, migrations), the catalog that enforces isolation (partitions,
row-level security flags, policies, triggers, grants), and both keys byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from psycopg import sql

from auditline.bench.seed import seed
from auditline.cli import main
from auditline.config import BackupSettings, DatabaseSettings, Settings
from auditline.domain.access import Actor
from auditline.integrity.signer import DEFAULT_KEY_FILE, load_or_create_checkpoint_key
from auditline.lifecycle.backup import (
    MANIFEST,
    BackupBusy,
    BackupCorrupt,
    BackupError,
    Backups,
    RestoreMismatch,
    _exclusive,
    backup,
    verify,
)
from auditline.services import open_services
from auditline.storage.embedded import EmbeddedPostgres
from auditline.tasks import BACKUP_CREATE, background, build_tasks
from auditline.tenancy.scope import for_system

pytestmark = pytest.mark.slow

Snapshot = dict[str, Any]


def settings_for(data_dir: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=data_dir, database=DatabaseSettings(pool_min_size=1, pool_max_size=4), **extra
    )


async def populate(settings: Settings, *, prefix: str, events: int) -> str:
    """Tenants with events, an API key and both keys; returns the API key's secret."""
    async with open_services(settings) as services:
        report = await seed(services.pool, events=events, tenants=4, prefix=prefix, batch_size=100)
        tenant = for_system(report.tenants[0][0], reason="test data")
        _, secret = await services.security.api_keys.create(
            tenant, name="ci", scopes=["logs:write"], expires_at=None, actor=Actor("t", "system")
        )
    load_or_create_checkpoint_key(settings.data_dir / DEFAULT_KEY_FILE)
    return secret


def snapshot(url: str) -> Snapshot:
    """Every row of every table and the catalog entries isolation depends on."""
    rows: dict[str, list[str]] = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                ORDER BY 1"""
        ).fetchall()
        for (name,) in tables:
            query = sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier("public", name))
            rows[name] = sorted(r[0] for r in conn.execute(query).fetchall())
        relations = conn.execute(
            """SELECT c.relname, c.relkind::text, c.relrowsecurity, c.relforcerowsecurity,
                      -- A partition is reached through its parent, whose grants decide;
                      -- its own may differ (restore re-grants, as each migration run does).
                      CASE WHEN c.relispartition THEN '' ELSE coalesce(c.relacl::text, '') END
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' ORDER BY 1"""
        ).fetchall()
        policies = conn.execute(
            "SELECT tablename, policyname, roles::text, qual, with_check FROM pg_policies "
            "WHERE schemaname = 'public' ORDER BY 1, 2"
        ).fetchall()
        triggers = conn.execute(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal "
            "ORDER BY 1, 2"
        ).fetchall()
        functions = conn.execute(
            """SELECT p.oid::regprocedure::text, coalesce(p.proacl::text, ''), p.prosecdef
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = 'public' AND p.proname LIKE 'auditline%' ORDER BY 1"""
        ).fetchall()
    return {
        "rows": rows,
        "catalog": {
            "relations": relations, "policies": policies, "triggers": triggers,
            "functions": functions,
        },
    }  # fmt: skip


def key_bytes(data_dir: Path) -> dict[str, bytes]:
    return {name: (data_dir / name).read_bytes() for name in ("signing-key.pem", DEFAULT_KEY_FILE)}


def archive_tree(data_dir: Path) -> dict[str, bytes]:
    """The local archive's files (manifests and Parquet), without work in progress."""
    root = data_dir / "archive"
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def cli(*args: str, data_dir: Path) -> int:
    return main([*args, "--data-dir", str(data_dir)])


@dataclass
class Source:
    data_dir: Path
    server: EmbeddedPostgres
    backup: Path
    at_backup: Snapshot
    keys: dict[str, bytes]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """A populated installation with one backup, then changed after the backup."""
    root = tmp_path_factory.mktemp("source")
    data_dir = root / "data"
    settings = settings_for(data_dir)
    asyncio.run(populate(settings, prefix="early", events=400))
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        at_backup = snapshot(server.url())
        assert cli("backup", "--out", str(root / "backup"), data_dir=data_dir) == 0
        asyncio.run(populate(settings, prefix="late", events=40))
        yield Source(data_dir, server, root / "backup", at_backup, key_bytes(data_dir))
    finally:
        server.stop(force=True)


def test_restore_into_a_destroyed_data_dir_brings_back_every_row_and_both_keys(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    secret = asyncio.run(populate(settings_for(data_dir), prefix="acme", events=600))
    server = EmbeddedPostgres(data_dir)
    server.start()
    before, keys = snapshot(server.url()), key_bytes(data_dir)
    assert all(before["rows"][t] for t in ("events", "tenants", "api_keys", "tenant_log_heads"))
    day = data_dir / "archive" / "tenant=acme-000" / "day=2026-01-01"
    day.mkdir(parents=True)
    (day / "manifest.json").write_text('{"rows": 2}')
    (day / "events-0123456789abcdef.parquet").write_bytes(b"PAR1" + bytes(range(256)) + b"PAR1")
    (day / ".events-fedcba.parquet.tmp").write_bytes(b"half written")
    archived = archive_tree(data_dir)
    assert len(archived) == 2
    assert cli("backup", "--out", str(tmp_path / "backup"), data_dir=data_dir) == 0
    server.stop(force=True)
    shutil.rmtree(data_dir)

    assert cli("restore", "--from", str(tmp_path / "backup"), data_dir=data_dir) == 0

    assert key_bytes(data_dir) == keys
    assert archive_tree(data_dir) == archived
    assert not (day / ".events-fedcba.parquet.tmp").exists()
    for name in keys:
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600
    restored = EmbeddedPostgres(data_dir)
    restored.start()
    try:
        after = snapshot(restored.url())
        assert after["rows"].keys() == before["rows"].keys()
        for table, rows in before["rows"].items():
            assert after["rows"][table] == rows, f"table {table} differs after the restore"
        assert after["catalog"] == before["catalog"]

        async def service_works() -> None:
            async with open_services(settings_for(data_dir)) as services:
                principal = await services.security.api_keys.authenticate(secret)
                assert principal.tenants == frozenset({"acme-000"})
                assert principal.scopes == frozenset({"logs:write"})

        asyncio.run(service_works())
    finally:
        restored.stop(force=True)


def test_restore_into_an_empty_database_by_url(
    source: Source, tmp_path: Path, pg_server: EmbeddedPostgres
) -> None:
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE restored_by_url")
    env_url = pg_server.url("restored_by_url")
    try:
        settings = settings_for(tmp_path / "data")
        settings.database.url = env_url
        result = asyncio.run(_restore(settings, source.backup))
        assert result.manifest["events"] == sum(result.manifest["events_by_tenant"].values())
        assert snapshot(env_url)["rows"] == source.at_backup["rows"]
        assert key_bytes(tmp_path / "data") == source.keys

        again = asyncio.run(backup(env_url, settings, tmp_path / "again"))
        assert again.manifest["tables"] == result.manifest["tables"]
        assert again.manifest["events_by_tenant"] == result.manifest["events_by_tenant"]
    finally:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute("DROP DATABASE restored_by_url WITH (FORCE)")


async def _restore(settings: Settings, backup: Path) -> Any:
    from auditline.lifecycle.backup import restore

    assert settings.database.url is not None
    return await restore(settings.database.url, settings, backup)


@pytest.fixture
def empty_database(pg_server: EmbeddedPostgres) -> Iterator[str]:
    name = f"restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg_server.url(name)
    finally:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_backup_taken_while_events_are_written_matches_its_own_counts(
    source: Source, tmp_path: Path, empty_database: str
) -> None:
    """The dump and the manifest's counts come from one snapshot: restore's count check
    (which raises on any difference) passes although writes went on throughout."""
    settings = settings_for(source.data_dir)

    async def backup_under_writes() -> Any:
        async with open_services(settings) as services:
            written = asyncio.Event()
            writes = asyncio.create_task(
                seed(
                    services.pool, events=10_000, tenants=2, prefix="busy", batch_size=50,
                    progress=lambda _: written.set(),
                )
            )  # fmt: skip
            await written.wait()  # a first batch is committed, more are coming
            try:
                return await backup(source.server.url(), settings, tmp_path / "backup")
            finally:
                await writes

    made = asyncio.run(backup_under_writes())
    busy = sum(n for t, n in made.manifest["events_by_tenant"].items() if t.startswith("busy"))
    assert 0 < busy < 10_000, "the backup did not overlap the writes"

    target = settings_for(tmp_path / "data")
    target.database.url = empty_database
    restored = asyncio.run(_restore(target, tmp_path / "backup"))
    assert restored.manifest["events_by_tenant"] == made.manifest["events_by_tenant"]


def test_a_role_that_cannot_see_every_tenant_cannot_take_a_backup(
    source: Source, tmp_path: Path, empty_database: str, pg_server: EmbeddedPostgres
) -> None:
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS backup_without_bypass")
        conn.execute("CREATE ROLE backup_without_bypass LOGIN NOBYPASSRLS")
    target = settings_for(tmp_path / "data")
    target.database.url = empty_database
    asyncio.run(_restore(target, source.backup))
    limited = empty_database.replace(
        "postgresql://postgres@", "postgresql://backup_without_bypass@"
    )
    assert limited != empty_database
    with pytest.raises(BackupError, match="bypasses row-level security"):
        asyncio.run(backup(limited, target, tmp_path / "backup"))
    assert not (tmp_path / "backup").exists()


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda b: _flip_byte(b / "database.dump"), "database.dump: SHA-256 differs"),
        (lambda b: (b / "database.dump").write_bytes(b"PGDMP"), "database.dump: 5 bytes"),
        (lambda b: _flip_byte(b / "keys" / "checkpoint-key.pem"), "checkpoint-key.pem: SHA-256"),
        (lambda b: (b / "keys" / "signing-key.pem").unlink(), "signing-key.pem: missing"),
        (lambda b: (b / MANIFEST).unlink(), "unfinished backup"),
    ],
    ids=["dump-bit-flip", "dump-truncated", "key-altered", "key-missing", "no-manifest"],
)
def test_a_damaged_backup_is_refused_before_anything_is_restored(
    source: Source,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Any,
    expected: str,
) -> None:
    backup = tmp_path / "backup"
    shutil.copytree(source.backup, backup)
    damage(backup)
    target = tmp_path / "data"

    assert cli("restore", "--from", str(backup), "--verify-only", data_dir=target) == 1
    assert expected in capsys.readouterr().err
    assert cli("restore", "--from", str(backup), data_dir=target) == 1

    assert expected in capsys.readouterr().err
    assert not target.exists(), "a refused restore created or changed the target"


def test_verify_only_accepts_an_intact_backup(
    source: Source, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("restore", "--from", str(source.backup), "--verify-only", data_dir=tmp_path) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["events"] == len(source.at_backup["rows"]["events"])
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_naming_files_outside_the_backup_is_refused(
    source: Source, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    shutil.copytree(source.backup, backup)
    manifest = json.loads((backup / MANIFEST).read_text())
    manifest["files"]["../../elsewhere.pem"] = {"role": "archive_manifest", "bytes": 1}
    (backup / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BackupCorrupt, match="outside the backup"):
        verify(backup)


def test_a_non_empty_database_is_refused_and_left_unchanged_unless_forced(
    source: Source, capsys: pytest.CaptureFixture[str]
) -> None:
    current = snapshot(source.server.url())
    assert current["rows"]["events"] != source.at_backup["rows"]["events"]  # changed since

    assert cli("restore", "--from", str(source.backup), data_dir=source.data_dir) == 1
    assert "target database is not empty" in capsys.readouterr().err
    assert snapshot(source.server.url()) == current

    assert cli("restore", "--from", str(source.backup), "--force", data_dir=source.data_dir) == 0
    assert snapshot(source.server.url())["rows"] == source.at_backup["rows"]


def test_differing_keys_in_the_target_are_refused_unless_forced_and_then_kept_aside(
    source: Source, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "data"
    target.mkdir()
    load_or_create_checkpoint_key(target / DEFAULT_KEY_FILE)
    other_key = (target / DEFAULT_KEY_FILE).read_bytes()

    assert cli("restore", "--from", str(source.backup), data_dir=target) == 1
    assert "differ from the backup" in capsys.readouterr().err
    assert sorted(p.name for p in target.iterdir()) == [DEFAULT_KEY_FILE]
    assert (target / DEFAULT_KEY_FILE).read_bytes() == other_key

    try:
        assert cli("restore", "--from", str(source.backup), "--force", data_dir=target) == 0
        assert key_bytes(target) == source.keys
        kept = list(target.glob(f"{DEFAULT_KEY_FILE}.replaced-*"))
        assert [p.read_bytes() for p in kept] == [other_key]
    finally:
        EmbeddedPostgres(target).stop(force=True)


def test_scheduled_backups_keep_the_newest_n_and_clear_failed_runs(source: Source) -> None:
    settings = settings_for(source.data_dir, backup=BackupSettings(keep=2))
    root = source.data_dir / "backups"  # the default backup.dir
    failed = root / "auditline-00000000T000000000000Z"  # an old run that died mid-way
    failed.mkdir(parents=True)
    (failed / "database.dump").write_bytes(b"partial")
    running = root / "auditline-99999999T000000000000Z"  # newer than any: may be running

    async def scheduled_runs() -> tuple[list[str], dict[str, Any]]:
        async with open_services(settings) as services:
            made = [(await services.backups.backup_to())["path"] for _ in range(3)]
            running.mkdir()
            return made, await services.backups.backup_to()

    made, result = asyncio.run(scheduled_runs())

    kept = sorted(p for p in root.iterdir() if p.is_dir())
    assert kept == sorted([Path(made[2]), Path(result["path"]), running])
    assert result["removed"] == [made[1]]
    assert not failed.exists()
    for path in kept[:-1]:
        assert verify(path)["events"] == result["events"]


def test_a_restore_that_does_not_match_the_manifest_counts_is_reported(
    source: Source, tmp_path: Path, pg_server: EmbeddedPostgres
) -> None:
    backup = tmp_path / "backup"
    shutil.copytree(source.backup, backup)
    manifest = json.loads((backup / MANIFEST).read_text())
    tenant = next(iter(manifest["events_by_tenant"]))
    manifest["events_by_tenant"][tenant] += 1
    (backup / MANIFEST).write_text(json.dumps(manifest))
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE restored_mismatch")
    try:
        settings = settings_for(tmp_path / "data")
        settings.database.url = pg_server.url("restored_mismatch")
        with pytest.raises(RestoreMismatch, match="events per tenant differ"):
            asyncio.run(_restore(settings, backup))
    finally:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute("DROP DATABASE restored_mismatch WITH (FORCE)")


def test_a_second_backup_into_the_same_directory_at_once_is_refused(
    source: Source, tmp_path: Path
) -> None:
    backups = Backups(settings_for(source.data_dir), source.server.url())
    with _exclusive(tmp_path), pytest.raises(BackupBusy):
        asyncio.run(backups.backup_to(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]


def test_backing_up_a_data_dir_without_a_database_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("backup", "--out", str(tmp_path / "out"), data_dir=tmp_path / "none") == 1
    assert "holds no database" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_backup_task_runs_on_the_worker_as_a_platform_job(
    source: Source, tmp_path: Path
) -> None:
    settings = settings_for(source.data_dir, backup=BackupSettings(dir=tmp_path / "b", keep=1))
    settings.jobs.scheduler = False  # submitted by hand below, not by the clock

    async def run() -> tuple[list[str], Any]:
        async with open_services(settings) as services:
            tasks = build_tasks(services)
            scheduled = [s.kind for s in tasks.schedules if s.name == "backup"]
            async with background(services, tasks):
                job_id = await services.jobs.submit(BACKUP_CREATE, {}, tenant=None)
                for _ in range(600):
                    with psycopg.connect(source.server.url()) as conn:
                        row = conn.execute(
                            "SELECT status, tenant_id, result FROM jobs WHERE id = %s", (job_id,)
                        ).fetchone()
                    if row and row[0] in ("succeeded", "failed"):
                        return scheduled, row
                    await asyncio.sleep(0.1)
            return scheduled, None

    scheduled, row = asyncio.run(run())
    assert scheduled == [BACKUP_CREATE]  # the embedded server's default: daily
    assert row is not None
    assert row[0] == "succeeded", row
    assert row[1] is None  # a platform job, in no tenant's list
    made = Path(row[2]["path"])
    assert made.parent == tmp_path / "b"
    assert verify(made)["events"] == row[2]["events"]


@pytest.mark.parametrize(
    ("url", "interval", "expected"),
    [(None, None, 86_400.0), ("postgresql://db/x", None, 0.0), ("postgresql://db/x", 3600, 3600),
     (None, 0, 0.0)],
)  # fmt: skip
def test_scheduled_backups_default_to_daily_only_with_the_embedded_server(
    url: str | None, interval: float | None, expected: float
) -> None:
    settings = Settings(
        database=DatabaseSettings(url=url), backup=BackupSettings(interval_seconds=interval)
    )
    assert settings.backup_interval_seconds == expected


def test_a_cancelled_backup_leaves_no_pg_dump_running(source: Source, tmp_path: Path) -> None:
    """A worker that stops mid-backup cancels the task: pg_dump must go with it."""
    me = psutil.Process()

    def dumps() -> list[psutil.Process]:
        return [p for p in me.children(recursive=True) if p.name() == "pg_dump"]

    async def cancel_mid_dump() -> bool:
        with psycopg.connect(source.server.url()) as blocker:
            blocker.execute("LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")  # pg_dump waits
            task = asyncio.create_task(
                backup(source.server.url(), settings_for(source.data_dir), tmp_path / "b")
            )
            for _ in range(300):
                if dumps():
                    break
                await asyncio.sleep(0.1)
            running = bool(dumps())
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            blocker.rollback()
        return running

    assert asyncio.run(cancel_mid_dump()), "pg_dump never started"
    assert dumps() == []
    assert not (tmp_path / "b" / MANIFEST).exists()
