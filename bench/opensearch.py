"""OpenSearch benchmark: ``python -m bench.opensearch`` (``make bench``, suite ``opensearch``).

What it does, in order:

1. starts an embedded PostgreSQL in ``bench/.work/opensearch/pg`` and a real OpenSearch
   node (the test harness's launcher: one node, 512 MB heap), or uses ``--opensearch-url``;
   seeds ``--events`` events over ``--tenants`` tenants with ``auditline.bench.seed`` (the
   same generator, seed and mix as ``bench.search``) unless they are there;
2. **indexing throughput**: ``--indexers`` indexing passes of one ``SearchIndexer`` at
   once (as that many workers' indexing tasks; default one), each tenant by tenant and
   skipping the tenants another pass holds, bulk requests of ``--batch-size``, a refresh
   per tenant run, index the whole log from an empty index; events/s;
3. **index lag under ingest**: ``--rate`` events/s are written for ``--lag-seconds`` (batches
   of 100 into the ten largest tenants in turn, through ``storage.events.insert_events``)
   while the indexer makes a pass every ``--interval`` seconds (``opensearch.index_interval
   _seconds``); each batch's lag is from its commit to the end of the indexer run that made
   it searchable; p50/p99/max;
4. **search latency, both backends on the same data**: the standard mix of
   ``bench.search`` (statistics left out: OpenSearch does not answer them) run
   ``--runs`` times, each query built once and timed on PostgreSQL and then on OpenSearch,
   with whether their first pages agree.

Results: ``bench/results/opensearch.json`` (the report's section). Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from auditline.bench.seed import seed
from auditline.config import DatabaseSettings, IngestSettings, OpenSearchSettings
from auditline.domain.events import EventDraft
from auditline.domain.tenants import TenantId
from auditline.indexing.service import SearchIndexer
from auditline.ingest.prepare import prepare_events
from auditline.opensearch.backend import OpenSearchSearch
from auditline.opensearch.client import OpenSearchIndex, open_client
from auditline.opensearch.documents import IndexNames
from auditline.storage.database import open_pool, tenant_transaction
from auditline.storage.embedded import EmbeddedPostgres
from auditline.storage.events import insert_events
from auditline.storage.migrations import migrate
from auditline.storage.search.backend import PostgresSearch
from auditline.storage.stream import last_seq
from bench import report
from bench.search import deep_cursors, percentile, prepare_context, summarise, the_mix

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PREFIX = "bench"


async def index_everything(indexer: SearchIndexer, tasks: int = 1) -> dict[str, Any]:
    """Index every tenant's whole log with *tasks* indexing passes at once, as that many
    workers would: each pass skips the tenants another holds, so they split the tenants
    between them (one tenant's log is still indexed by one pass at a time)."""
    began = time.perf_counter()
    indexed = 0

    async def one() -> None:
        nonlocal indexed
        while True:
            runs = await indexer.index_all()
            done = sum(r.indexed for r in runs)
            indexed += done
            if all(r.behind == 0 and not r.skipped for r in runs):
                break
            if done == 0:  # only tenants another pass holds are left
                await asyncio.sleep(1)

    await asyncio.gather(*(one() for _ in range(tasks)))
    seconds = time.perf_counter() - began
    return {"events": indexed, "seconds": round(seconds, 1), "tasks": tasks,
            "events_per_second": round(indexed / seconds)}  # fmt: skip


async def lag_under_ingest(
    pool: Any, indexer: SearchIndexer, tenants: list[TenantId], *, rate: int, seconds: float,
    interval: float,
) -> dict[str, Any]:  # fmt: skip
    """Commit→searchable lag of every batch written at *rate* events/s for *seconds*."""
    batch = 100
    committed: list[tuple[TenantId, int, float]] = []  # (tenant, last seq, commit time)
    searchable: dict[TenantId, list[tuple[int, float]]] = {t: [] for t in tenants}
    stop = asyncio.Event()
    limits = IngestSettings()

    async def ingest() -> None:
        began = time.perf_counter()
        n = 0
        while time.perf_counter() - began < seconds:
            tenant = tenants[n % len(tenants)]
            now = datetime.now(UTC)
            drafts = [EventDraft(action="UPDATE", message=f"lag probe {n} {i} invoice updated",
                                 user_id=f"u{i % 17}") for i in range(batch)]  # fmt: skip
            prepared = prepare_events(tenant, drafts, limits=limits, now=now)
            async with tenant_transaction(pool, tenant) as conn:
                await insert_events(conn, tenant, prepared)
                head = await last_seq(conn, tenant)
            committed.append((tenant, head, time.perf_counter()))
            n += 1
            due = began + n * batch / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        stop.set()

    async def follow() -> None:
        while True:
            for tenant in tenants:
                run = await indexer.index_tenant(tenant)
                searchable[tenant].append((run.next_seq, time.perf_counter()))
            if stop.is_set() and all(
                searchable[t] and searchable[t][-1][0] > max((s for u, s, _ in committed
                                                              if u == t), default=-1)
                for t in tenants
            ):  # fmt: skip
                return
            await asyncio.sleep(interval)

    await asyncio.gather(ingest(), follow())
    lags = []
    for tenant, head, at in committed:
        done = next(t for nxt, t in searchable[tenant] if nxt > head and t >= at)
        lags.append(done - at)
    written = len(committed) * batch
    return {
        "rate": rate, "seconds": seconds, "interval_seconds": interval, "events": written,
        "achieved_rate": round(written / (committed[-1][2] - committed[0][2] + batch / rate)),
        "lag_p50_s": round(percentile(lags, 0.5), 2), "lag_p99_s": round(percentile(lags, 0.99), 2),
        "lag_max_s": round(max(lags), 2),
    }  # fmt: skip


async def side_by_side(
    pg: PostgresSearch, os_backend: OpenSearchSearch, ctx: Any, *, runs: int, seed_value: int
) -> dict[str, Any]:
    mix = [q for q in the_mix(ctx) if q.kind == "search"]
    timings: dict[str, dict[str, list[float]]] = {"postgres": {}, "opensearch": {}}
    agree = total = 0
    rng = random.Random(seed_value)
    for _ in range(runs):
        for query in mix:
            tenant, search_query, request = query.build(rng)
            ids = []
            for name, backend in (("postgres", pg), ("opensearch", os_backend)):
                began = time.perf_counter()
                page = await backend.search(tenant, search_query, request)
                ms = (time.perf_counter() - began) * 1000
                timings[name].setdefault(query.name, []).append(ms)
                ids.append([s.event.id for s in page.items])
            total += 1
            agree += ids[0] == ids[1]
    return {
        "mix": {q.name: q.describe for q in mix},
        "postgres": summarise(timings["postgres"]),
        "opensearch": summarise(timings["opensearch"]),
        "postgres_all": summarise({"all": [v for vs in timings["postgres"].values()
                                           for v in vs]})["all"],
        "opensearch_all": summarise({"all": [v for vs in timings["opensearch"].values()
                                             for v in vs]})["all"],
        "first_pages_equal": agree, "queries": total,
    }  # fmt: skip


async def main_async(args: argparse.Namespace) -> None:
    work = Path(args.work) if args.work else ROOT / "bench" / ".work" / "opensearch"
    work.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(work / "pg", settings={"fsync": "off"})
    server.start()
    server.adopt()
    url = server.url()
    node = None
    try:
        if args.opensearch_url:
            os_url = args.opensearch_url
        else:
            from tests.services.fixtures import start_opensearch

            node, endpoint = start_opensearch(work / "node")
            os_url = endpoint.url
        await migrate(url, app_role="auditline_app")
        pool = await open_pool(url, DatabaseSettings(
            url=url, pool_min_size=1, pool_max_size=4 + args.indexers))  # fmt: skip
        try:
            with psycopg.connect(url) as conn:
                row = conn.execute(
                    "SELECT coalesce(sum(next_seq), 0) FROM tenant_log_heads"
                    " WHERE tenant_id LIKE 'bench-%'"
                ).fetchone()
            if (int(row[0]) if row else 0) < args.events:
                print(f"seeding {args.events:,} events ...", flush=True)
                seeded = await seed(pool, events=args.events, tenants=args.tenants, days=30,
                                    seed_value=args.seed)  # fmt: skip
                print(f"seeded in {seeded.seconds:.0f} s", flush=True)
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("VACUUM (ANALYZE)")
            settings = OpenSearchSettings(url=os_url, index_prefix=PREFIX, replicas=0,
                                          request_timeout_seconds=120)  # fmt: skip
            index = OpenSearchIndex(await open_client(settings), IndexNames(PREFIX), replicas=0)
            try:
                with contextlib.suppress(Exception):
                    await index.drop()
                with psycopg.connect(url, autocommit=True) as conn:  # from an empty index
                    conn.execute("UPDATE search_index_progress SET next_seq = 0")
                    conn.execute("UPDATE removed_ranges SET search_propagated = false")
                indexer = SearchIndexer(pool, index, batch_size=args.batch_size,
                                        max_batches=1_000_000)  # fmt: skip
                print("indexing ...", flush=True)
                indexing = await index_everything(indexer, args.indexers)
                print(indexing, flush=True)
                ctx = await prepare_context(url, args.tenants)
                largest = [t for t, _ in ctx.tenants[:10]]
                print("lag under ingest ...", flush=True)
                lag = await lag_under_ingest(
                    pool, indexer, largest, rate=args.rate, seconds=args.lag_seconds,
                    interval=args.interval,
                )  # fmt: skip
                print(lag, flush=True)
                ctx = await prepare_context(url, args.tenants)
                pg = PostgresSearch(pool)
                await deep_cursors(pg, ctx)
                os_backend = OpenSearchSearch(index, indexer.watermark)
                print("search mix on both backends ...", flush=True)
                searches = await side_by_side(pg, os_backend, ctx, runs=args.runs,
                                              seed_value=args.seed)  # fmt: skip
                stats = await index.client.indices.stats(index=index.names.pattern, metric="store")
                store_bytes = stats["_all"]["primaries"]["store"]["size_in_bytes"]
            finally:
                if not args.keep_index:
                    with contextlib.suppress(Exception):
                        await index.drop()
                await index.close()
        finally:
            await pool.close()
        result = {
            "events": sum(n for _, n in ctx.tenants), "tenants": len(ctx.tenants),
            "largest": ctx.tenants[0], "batch_size": args.batch_size,
            "indexing": indexing, "lag": lag, "search": searches,
            "index_bytes": store_bytes, "heap": "512 MB",
            "environment": report.environment(), "load_average": os.getloadavg(),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "note": args.note,
        }  # fmt: skip
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "opensearch.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(json.dumps({k: result[k] for k in ("indexing", "lag")}, indent=1))
    finally:
        if node is not None:
            node.stop()
        with contextlib.suppress(Exception):
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.opensearch", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-size", type=int, default=2000, help="opensearch.index_batch_size")
    parser.add_argument("--indexers", type=int, default=1,
                        help="indexing passes at once (as that many workers)")  # fmt: skip
    parser.add_argument("--rate", type=int, default=1000, help="ingest events/s during the lag run")
    parser.add_argument("--lag-seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=2.0,
                        help="opensearch.index_interval_seconds")  # fmt: skip
    parser.add_argument("--runs", type=int, default=50, help="runs of the mix on each backend")
    parser.add_argument("--opensearch-url", help="use this cluster instead of a node of its own")
    parser.add_argument("--keep-index", action="store_true")
    parser.add_argument("--work", help="directory of its servers (default bench/.work/opensearch)")
    parser.add_argument("--note", default="", help="conditions of this run, for the report")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
