"""Archival benchmark: ``python -m bench.archive`` seeds, archives everything due, restores.

What it does, in order:

1. starts (or reuses) an embedded PostgreSQL in ``bench/.work/archive`` (or uses ``--url``),
   migrates it and seeds ``--events`` events over ``--tenants`` tenants and ``--days`` days
   with ``auditline.bench.seed`` (realistic, skewed; real leaf hashes); VACUUM ANALYZE;
2. measures the hot footprint: bytes per event of the events table (heap + TOAST, then
   with its indexes) and of ``event_ids``, and the JSON columns' compression method;
3. sets ``archive_after_days = 1`` on every tenant and runs the archival task once
   (``ArchiveService.archive_due``) into a directory store: read, Parquet (zstd) encode,
   write, read back and verify, record, remove from the hot table. Archival rows/s is over
   the whole task; bytes per event archived is the Parquet files' size over their rows;
4. restores every archived day of every tenant (``ArchiveService.restore``): rows/s;
5. checks that the restored events equal the seeded ones (a digest over every column).

Archived events leave the hot table through the retention primitive, as in the service
(batches of ``retention.batch_size``, each recorded). Results go to
``bench/results/archive.json``. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

from auditline.bench.seed import seed
from auditline.config import DatabaseSettings, Settings
from auditline.domain.access import Actor
from auditline.lifecycle.archive.service import ArchiveService
from auditline.lifecycle.archive.store import DirectoryStore
from auditline.services import Services, open_services
from auditline.storage import integrity as integrity_store
from auditline.storage.embedded import EmbeddedPostgres
from auditline.tenancy.scope import for_system

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / ".work" / "archive"
OPERATOR = Actor("bench:archive", "system")


DIGEST = """
SELECT count(*) AS n,
       md5(string_agg(md5(e::text), '' ORDER BY tenant_id, seq)) AS digest
  FROM events e WHERE resource_type IS DISTINCT FROM 'audit_log'
"""


def hot_footprint(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) events")
        conn.execute("VACUUM (ANALYZE) event_ids")
        row = conn.execute(
            """SELECT (SELECT count(*) FROM events) AS events,
                      (SELECT sum(pg_table_size(inhrelid)) FROM pg_inherits
                        WHERE inhparent = 'events'::regclass) AS table_bytes,
                      (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
                        WHERE inhparent = 'events'::regclass) AS total_bytes,
                      pg_total_relation_size('event_ids') AS ids_bytes,
                      (SELECT avg(pg_column_size(e.*)) FROM events e) AS avg_row_bytes,
                      (SELECT avg(coalesce(pg_column_size(metadata), 0)
                                  + coalesce(pg_column_size(before), 0)
                                  + coalesce(pg_column_size(after), 0))
                         FROM events) AS avg_json_bytes,
                      (SELECT count(*) FILTER (WHERE pg_column_compression(metadata) IS NOT NULL)
                         FROM events) AS compressed_metadata,
                      auditline_json_compression() AS json_compression"""
        ).fetchone()
        assert row is not None  # noqa: S101 - an aggregate returns a row
        names = ("events", "table_bytes", "total_bytes", "ids_bytes", "avg_row_bytes",
                 "avg_json_bytes", "compressed_metadata", "json_compression")  # fmt: skip
        data = dict(zip(names, row, strict=True))
    n = max(int(data["events"]), 1)
    return {
        "events": int(data["events"]),
        "bytes_per_event_table": round(int(data["table_bytes"]) / n, 1),
        "bytes_per_event_with_indexes": round(int(data["total_bytes"]) / n, 1),
        "bytes_per_event_id_rows": round(int(data["ids_bytes"]) / n, 1),
        "avg_row_bytes": round(float(data["avg_row_bytes"]), 1),
        "avg_json_bytes": round(float(data["avg_json_bytes"]), 1),
        "events_with_compressed_metadata": int(data["compressed_metadata"]),
        "json_compression": data["json_compression"] or "pglz (server built without lz4)",
    }


def digest(url: str) -> tuple[int, str]:
    with psycopg.connect(url) as conn:
        row = conn.execute(DIGEST).fetchone()
    assert row is not None  # noqa: S101 - an aggregate returns a row
    return int(row[0]), str(row[1])


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(data_dir=WORK / "data", database=DatabaseSettings(url=url, pool_max_size=4))
    settings.ingest.group_commit = False
    settings.archive.zstd_level = args.zstd_level
    cold = WORK / "cold"
    shutil.rmtree(cold, ignore_errors=True)
    async with open_services(settings) as services:
        with psycopg.connect(url) as conn:
            seeded = conn.execute(
                "SELECT count(*) FROM events WHERE resource_type IS DISTINCT FROM 'audit_log'"
            ).fetchone()
        if not seeded or seeded[0] < args.events:
            report = await seed(
                services.pool, events=args.events, tenants=args.tenants, days=args.days,
                prefix="arch", seed_value=42,
            )  # fmt: skip
            print(f"seeded {report.events} events in {report.seconds:.1f} s")
        # Only sealed events leave the hot table (retention's sealed_through bound).
        began = time.perf_counter()
        sealed = await seal_all_until_current(services)
        print(f"sealed {sealed} tenants' logs in {time.perf_counter() - began:.1f} s")
        hot = hot_footprint(url)
        before = digest(url)
        print(f"hot: {hot}")
        with psycopg.connect(url) as conn:
            conn.execute("UPDATE tenants SET archive_after_days = 1 WHERE NOT system")
        archive = ArchiveService(
            services.pool, DirectoryStore(cold), settings.archive, services.access,
            deleter=services.retention.delete_events,
        )  # fmt: skip
        cpu = psutil.Process().cpu_times()
        began = time.perf_counter()
        results = await archive.archive_due()
        archive_seconds = time.perf_counter() - began
        archived_rows = sum(r.archived for r in results)
        removed = sum(r.removed for r in results)
        files = list(cold.rglob("*.parquet"))
        parquet_bytes = sum(p.stat().st_size for p in files)
        manifests = sum(p.stat().st_size for p in cold.rglob("manifest.json"))
        print(f"archived {archived_rows} rows of {len(results)} tenant-days in "
              f"{archive_seconds:.1f} s; {parquet_bytes} bytes of Parquet")  # fmt: skip
        remaining = digest(url)[0]
        tenants = sorted({r.tenant for r in results})
        began = time.perf_counter()
        restored = 0
        for tenant in tenants:
            days = [r.day for r in results if r.tenant == tenant]
            result = await archive.restore(
                for_system(tenant, reason="benchmark"), min(days), max(days), actor=OPERATOR
            )
            restored += result.inserted
        restore_seconds = time.perf_counter() - began
        after = digest(url)
        cpu_after = psutil.Process().cpu_times()
    print(f"restored {restored} rows in {restore_seconds:.1f} s; equal: {after == before}")
    return {
        "events": args.events,
        "tenants": args.tenants,
        "days": args.days,
        "zstd_level": args.zstd_level,
        "hot": hot,
        "archive": {
            "tenant_days": len(results),
            "rows": archived_rows,
            "removed_from_hot": removed,
            "left_hot": remaining,
            "seconds": round(archive_seconds, 2),
            "rows_per_second": round(archived_rows / max(archive_seconds, 1e-9)),
            "parquet_bytes": parquet_bytes,
            "manifest_bytes": manifests,
            "bytes_per_event": round(parquet_bytes / max(archived_rows, 1), 1),
        },
        "compression_ratio": {
            "table_vs_parquet": round(
                hot["bytes_per_event_table"] / max(parquet_bytes / max(archived_rows, 1), 1e-9),
                1,
            ),
            "with_indexes_vs_parquet": round(
                (hot["bytes_per_event_with_indexes"] + hot["bytes_per_event_id_rows"])
                / max(parquet_bytes / max(archived_rows, 1), 1e-9),
                1,
            ),
        },
        "restore": {
            "rows": restored,
            "seconds": round(restore_seconds, 2),
            "rows_per_second": round(restored / max(restore_seconds, 1e-9)),
            "identical_to_seeded": after == before,
        },
        "process_cpu_seconds": round(
            (cpu_after.user + cpu_after.system) - (cpu.user + cpu.system), 1
        ),
        "environment": {
            "python": platform.python_version(),
            "cpus": psutil.cpu_count(),
            "machine": platform.machine(),
        },
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


async def seal_all_until_current(services: Services) -> int:
    async with services.pool.connection() as conn:
        tenants = await integrity_store.tenant_ids(conn)
    for tenant in tenants:
        await services.sealer.seal_until_current(
            for_system(tenant, reason="benchmark: seal before archiving"), wait=True
        )
    return len(tenants)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.archive", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--zstd-level", type=int, default=9)
    parser.add_argument("--url", help="PostgreSQL URL (default: an embedded server)")
    parser.add_argument("--out", type=Path, default=RESULTS / "archive.json")
    parser.add_argument("--fresh", action="store_true", help="start from an empty database")
    args = parser.parse_args()
    if args.fresh and not args.url:
        shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.url:
        result = asyncio.run(run(args.url, args))
    else:
        server = EmbeddedPostgres(WORK / "pg")
        server.start()
        try:
            result = asyncio.run(run(server.url(), args))
        finally:
            server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
