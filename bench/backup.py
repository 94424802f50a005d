"""Backup and restore benchmark: ``python -m bench.backup --events N``.

1. Seeds ``--events`` events over ``--tenants`` tenants (``auditline.bench.seed``) into an
   embedded PostgreSQL in ``<work>/source`` unless it already holds that many;
2. for each ``--levels`` gzip level: ``lifecycle.backup.backup`` into a fresh directory
   (``pg_dump`` of one snapshot, counts, keys, manifest), then ``restore`` of that backup
   into a fresh data dir (a new cluster: initdb and start are timed apart from the
   restore itself, which is ``pg_restore`` in one transaction, the count check and the
   migration check);
3. writes events/s both ways, the dump's size and bytes per event to
   ``bench/results/backup.json``.

Both directions go through the same functions as ``auditline backup`` and ``auditline
restore``. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from auditline.bench.seed import seed
from auditline.config import DatabaseSettings, Settings
from auditline.lifecycle.backup import backup, restore
from auditline.runtime import database
from auditline.services import open_services
from auditline.storage.embedded import EmbeddedPostgres
from bench.report import environment

ROOT = Path(__file__).resolve().parents[1]


def _settings(data_dir: Path, level: int = 1) -> Settings:
    settings = Settings(data_dir=data_dir, database=DatabaseSettings(pool_min_size=1))
    settings.backup.compress_level = level
    settings.ingest.group_commit = False
    return settings


def _event_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('public.events') IS NOT NULL").fetchone()
        if not (exists and exists[0]):
            return 0
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def _database_bytes(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


async def _seed(settings: Settings, events: int, tenants: int) -> float:
    started = time.monotonic()
    async with open_services(settings) as services:
        await seed(services.pool, events=events, tenants=tenants, batch_size=5000)
    return time.monotonic() - started


def run(work: Path, *, events: int, tenants: int, levels: list[int]) -> dict[str, Any]:
    source = work / "source"
    server = EmbeddedPostgres(source)
    server.start()
    try:
        if _event_count(server.url()) != events:
            server.stop(force=True)
            shutil.rmtree(source)
            print(f"seeding {events:,} events over {tenants} tenants ...", flush=True)
            asyncio.run(_seed(_settings(source), events, tenants))
            server = EmbeddedPostgres(source)
            server.start()
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        database_bytes = _database_bytes(server.url())
        runs = []
        for level in levels:
            out = work / f"backup-gzip{level}"
            shutil.rmtree(out, ignore_errors=True)
            made = asyncio.run(backup(server.url(), _settings(source, level), out))
            target = work / f"restored-gzip{level}"
            shutil.rmtree(target, ignore_errors=True)
            settings = _settings(target, level)
            started = time.monotonic()
            with database(settings) as url:
                ready = time.monotonic() - started
                restored = asyncio.run(restore(url, settings, out))
            shutil.rmtree(target)
            dump_bytes = int(made.manifest["files"]["database.dump"]["bytes"])
            row = {
                "compress": f"gzip:{level}" if level else "none",
                "events": made.manifest["events"],
                "dump_bytes": dump_bytes,
                "dump_bytes_per_event": round(dump_bytes / max(events, 1), 1),
                "backup_seconds": round(made.seconds, 2),
                "backup_events_per_second": round(events / made.seconds),
                "new_cluster_seconds": round(ready, 2),
                "restore_seconds": round(restored.seconds, 2),
                "restore_events_per_second": round(events / restored.seconds),
            }
            print(json.dumps(row), flush=True)
            runs.append(row)
            shutil.rmtree(out)
    finally:
        server.stop(force=True)
    return {
        "events": events,
        "tenants": tenants,
        "database_bytes": database_bytes,
        "runs": runs,
        "environment": environment(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backup")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--levels", default="1,6", help="gzip levels to compare (0: none)")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "backup")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "backup.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    levels = [int(level) for level in args.levels.split(",")]
    result = run(args.work, events=args.events, tenants=args.tenants, levels=levels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
