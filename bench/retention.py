"""Retention: removing a month of events, by batches and by dropping its partition, while
single events are ingested beside it.

``python -m bench.retention --events 1000000`` (the issue's figure; ``--events 50000`` for a
quick check). One server (``auditline serve``, embedded PostgreSQL) takes single events at
a fixed offered rate (open loop, ``bench.openloop``) into the same tenant whose old events
are removed, the worst case: each batch holds that tenant's log head. Per scenario:

* ``baseline``: ingest alone, the p99 to compare against;
* ``batched``: ``RetentionService.delete_events`` removes a month of *events* events in
  batches of ``--batch-size`` (each batch recorded in the tenant's log with its ranges);
* ``partition drop``: ``RetentionService.apply_retention`` drops another month of *events*
  events whole (records and ranges per tenant, rollups of the month forgotten) and then
  removes their ``event_ids`` rows in batches.

It reports rows/s for each removal and the ingest p50/p99 measured while it ran (in
consecutive windows of ``--window`` seconds until the removal ends), beside the baseline;
the issue's target is a p99 no more than twice the baseline's. Results go to
``bench/results/retention.json``. Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from auditline.bench.seed import EventFactory, TenantShape
from auditline.config import Settings
from auditline.ingest.writer import month_of, months_from
from auditline.lifecycle.retention import SYSTEM_ACTOR
from auditline.services import Services, open_services
from auditline.storage.database import tenant_transaction
from auditline.storage.events import ensure_partition, insert_events
from auditline.tenancy.scope import for_system
from bench import openloop
from bench.ingest import TENANT, ensure_tenant, token_for
from bench.report import environment
from bench.servers import Process, start_auditline
from bench.workload import write_bodies

ROOT = Path(__file__).resolve().parents[1]


async def _seed(services: Services, month: datetime, events: int) -> float:
    """Write *events* events of the bench tenant spread over *month*; seconds taken."""
    tenant = for_system(TENANT, reason="benchmark data")
    end = months_from(month, 2)[1] - timedelta(seconds=1)
    shape = TenantShape(tenant, events, users=max(3, events // 150),
                        resources=max(5, events // 12), start=month, end=end)  # fmt: skip
    stream = EventFactory(shape, random.Random(month.toordinal())).events()
    began = time.perf_counter()
    async with services.pool.connection() as conn, conn.transaction():
        await ensure_partition(conn, month)
    while batch := list(itertools.islice(stream, 5000)):
        async with tenant_transaction(services.pool, tenant) as conn:
            await insert_events(conn, tenant, batch)
    return time.perf_counter() - began


def _in_thread(work: Callable[[], Awaitable[Any]]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run *work* in a thread of its own event loop (the load generator keeps this one);
    ``result`` is what it returned."""
    out: dict[str, Any] = {}

    def target() -> None:
        began = time.perf_counter()
        try:
            out["result"] = asyncio.run(work())  # type: ignore[arg-type]
        except BaseException as exc:  # reported, not lost in the thread
            out["error"] = repr(exc)
        out["seconds"] = time.perf_counter() - began

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


async def _load_while(
    server: Process, bodies: list[bytes], token: str, *, rate: float, window: float,
    alive: Callable[[], bool], min_windows: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """Ingest at *rate* in windows of *window* seconds while *alive()* (at least
    *min_windows*); the latencies of every window together."""
    latencies: list[float] = []
    errors = windows = 0
    while windows < min_windows or alive():
        result = await openloop.run(
            "127.0.0.1", server.port, "/api/v1/logs", bodies, token, rate=rate,
            seconds=window, connections=64,
        )  # fmt: skip
        latencies += result.latencies_ms
        errors += result.errors
        windows += 1
    done = openloop.OpenLoopResult(rate, 0.0, latencies, errors)
    return {
        "requests": len(latencies), "errors": errors, "windows": windows,
        "p50_ms": done.percentile(50), "p99_ms": done.percentile(99),
        "p999_ms": done.percentile(99.9),
    }  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = ROOT / "bench" / ".work-retention"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data_dir, log = work / "data", work / "server.log"
    now = datetime.now(UTC)
    # Two old months: the older for batches, the newer for the drop (a batched removal
    # takes everything older than its bound, so it goes first, on the older month).
    batched_month = month_of(now - timedelta(days=400))
    dropped_month = month_of(now - timedelta(days=300))
    # The server's own retention schedule stays off: the removals measured are the ones
    # started here, at known times.
    os.environ["AUDITLINE_RETENTION__SCHEDULED"] = "false"
    settings = Settings(data_dir=data_dir)
    settings.retention.batch_size = args.batch_size
    settings.retention.pause_ms = args.pause_ms
    settings.retention.duty = args.duty
    server = start_auditline(data_dir, workers=args.workers, log=log)
    try:
        ensure_tenant(server, data_dir, TENANT)
        token = token_for(data_dir, "user", TENANT)
        platform = token_for(data_dir, "admin", "*")
        bodies = write_bodies(work / "single.ndjson", count=5000, events_per_body=1, seed=1)
        lines = bodies.read_bytes().splitlines()
        result: dict[str, Any] = {"events": args.events, "batch_size": args.batch_size,
                                  "pause_ms": args.pause_ms, "duty": args.duty,
                                  "rate": args.rate,
                                  "workers": args.workers}  # fmt: skip

        async def seed(month: datetime) -> float:
            async with open_services(settings) as services:
                return await _seed(services, month, args.events)

        async def batched() -> Any:
            async with open_services(settings) as services:
                tenant = for_system(TENANT, reason="benchmark")
                bound = months_from(batched_month, 2)[1]
                began = time.perf_counter()
                deletion = await services.retention.delete_events(
                    tenant, SYSTEM_ACTOR, before=bound, reason="retention"
                )
                return time.perf_counter() - began, deletion.batches

        async def dropped() -> Any:
            async with open_services(settings) as services:
                began = time.perf_counter()
                done = await services.retention.apply_retention()
                return time.perf_counter() - began, sum(d.batches for d in done)

        print(f"seeding {args.events} events into {batched_month:%Y-%m}", flush=True)
        result["seed_seconds"] = [asyncio.run(seed(batched_month))]
        # the bench tenant keeps 200 days: both old months are expired, nothing recent goes
        httpx.patch(f"{server.base}/api/v1/tenants/{TENANT}", json={"retention_days": 200},
                    headers={"Authorization": f"Bearer {platform}"}).raise_for_status()  # fmt: skip
        print("warm-up", flush=True)  # not counted: first connections, caches, JIT-less paths
        asyncio.run(
            _load_while(server, lines, token, rate=args.rate, window=args.window,
                        alive=lambda: False, min_windows=2)
        )  # fmt: skip
        print("baseline", flush=True)
        result["baseline"] = asyncio.run(
            _load_while(server, lines, token, rate=args.rate, window=args.window,
                        alive=lambda: False, min_windows=args.baseline_windows)
        )  # fmt: skip
        for name, month, job in (("batched", batched_month, batched),
                                 ("partition drop", dropped_month, dropped)):  # fmt: skip
            if name == "partition drop":
                print(f"seeding {args.events} events into {month:%Y-%m}", flush=True)
                result["seed_seconds"].append(asyncio.run(seed(month)))
            print(name, flush=True)
            thread, out = _in_thread(job)
            load = asyncio.run(
                _load_while(server, lines, token, rate=args.rate, window=args.window,
                            alive=thread.is_alive)
            )  # fmt: skip
            thread.join()
            if "error" in out:
                raise RuntimeError(f"{name}: {out['error']}")
            seconds, batches = out["result"]  # the removal alone, not opening the services
            load["p99_vs_baseline"] = load["p99_ms"] / result["baseline"]["p99_ms"]
            # Each batch works t and then waits max(pause_ms, t * (1 - duty) / duty).
            working = min(seconds - batches * settings.retention.pause_ms / 1000,
                          seconds * settings.retention.duty)  # fmt: skip
            result[name] = {
                "seconds": seconds, "rows_per_s": args.events / seconds, "batches": batches,
                "ms_per_batch": 1000 * working / batches if batches else None,
                "ingest": load,
            }  # fmt: skip
            print(json.dumps(result[name]), flush=True)
    finally:
        server.stop()
    result["environment"] = environment()
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.retention")
    parser.add_argument("--events", type=int, default=1_000_000, help="events per removal")
    parser.add_argument("--batch-size", type=int, default=Settings().retention.batch_size)
    parser.add_argument("--pause-ms", type=int, default=Settings().retention.pause_ms)
    parser.add_argument("--duty", type=float, default=Settings().retention.duty)
    parser.add_argument("--rate", type=float, default=500, help="single events offered per s")
    parser.add_argument("--window", type=float, default=3, help="seconds per load window")
    parser.add_argument("--baseline-windows", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="API processes")
    parser.add_argument("--keep", action="store_true", help="keep bench/.work-retention")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "retention.json")
    args = parser.parse_args()
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
