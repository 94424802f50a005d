"""Ingest scenarios: bulk vs raw COPY, single events vs the bare ceiling, fixed-rate latency.

Every comparison is a ratio of two figures measured in the same run on the same machine,
because absolute numbers drift on shared hardware.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import statistics
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import rfc8785
from uuid_utils.compat import uuid7

from auditline.api.jsonbody import parse_body, read_body
from auditline.api.schemas import BulkIn, EventIn
from auditline.config import DatabaseSettings, Settings
from auditline.domain.events import Event
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from auditline.ingest.writer import EventWriter
from auditline.integrity.canonical import canonical_json
from auditline.integrity.leaf import leaf_entry
from auditline.runtime import signing_key
from auditline.security.tokens import issue_token
from auditline.storage.database import open_pool
from auditline.storage.embedded import EmbeddedPostgres
from auditline.storage.events import COLUMN_TYPES, COLUMNS, copy_row
from bench import openloop
from bench.servers import (
    WAIT_KINDS,
    PostgresCpu,
    PostgresWaits,
    Process,
    WrkResult,
    postgres_cpu_seconds,
    served_within,
    start_auditline,
    start_bare,
    wrk,
)
from bench.workload import write_bodies, write_search_paths

T = TypeVar("T")

TENANT = "bench"
SEARCH_TENANT = "bench-search"  # what the mixed scenario searches: a fixed 100 k events
INGEST_ROUTE = ("POST", "/api/v1/logs")  # single events, as /metrics labels them


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def token_for(data_dir: Path, role: str, tenant: str) -> str:
    settings = Settings(data_dir=data_dir)
    return issue_token(
        signing_key(settings), settings.auth, subject=f"bench-{role}", role=role,
        tenants=[tenant], ttl_seconds=24 * 3600,
    )  # fmt: skip


def ensure_tenant(server: Process, data_dir: Path, tenant: str) -> None:
    admin = token_for(data_dir, "admin", "*")
    response = httpx.post(
        server.base + "/api/v1/tenants",
        json={"id": tenant, "name": tenant},
        headers={"Authorization": f"Bearer {admin}"},
    )
    if response.status_code not in (201, 409):
        raise RuntimeError(response.text)


# The column types of ``events`` in COPY order; the severity enum's binary form is its label.
_EVENT_TYPES = ["text" if COLUMN_TYPES[c] == "severity" else COLUMN_TYPES[c] for c in COLUMNS]
_IP = COLUMNS.index("ip_address")  # binary COPY wants an address object, not its text


def raw_copy(
    url: str, bodies: Path, *, clients: int, seconds: float, data_dir: Path
) -> tuple[float, dict[str, float]]:
    """Events/s for plain COPY of the same prepared rows straight into ``events``, and the
    CPU milliseconds per 1,000 events it took: the loading threads (``client``) and
    PostgreSQL.

    The practical ceiling for bulk ingest: same table, same indexes, same row contents,
    one durable commit per 1,000-row batch, *clients* connections in parallel, for as long
    as the bulk scenario runs (so both pay their share of checkpoints and autovacuum), in
    the binary format the service stages with (its addresses parsed beforehand, as that
    format needs them).
    Nothing of the service's work (HTTP, JSON, validation, masking, hashing, idempotency,
    RLS) is in it; a repeated batch gets fresh ids, as the service would give it.
    """
    now = datetime.now(UTC)
    batches = []
    for line in bodies.read_text().splitlines():
        drafts = [EventIn.model_validate(e) for e in json.loads(line)["events"]]
        events = prepare_events(TenantId("bench-copy"), drafts, limits=Settings().ingest, now=now)
        rows = [copy_row(e, n) for n, e in enumerate(events)]
        batches.append(
            [(*r[:_IP], r[_IP] and ipaddress.ip_address(r[_IP]), *r[_IP + 1 :]) for r in rows]
        )
    copy_sql = f"COPY events ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    deadline = time.perf_counter() + seconds

    def load(client: int) -> int:
        stored = 0
        with psycopg.connect(url) as conn:
            conn.execute("SET synchronous_commit = on")
            while time.perf_counter() < deadline:
                batch = batches[(client + stored // 1000 * clients) % len(batches)]
                with conn.cursor().copy(copy_sql) as copy:  # type: ignore[arg-type]
                    copy.set_types(_EVENT_TYPES)
                    for row in batch:
                        copy.write_row((row[0], uuid7(), *row[2:]))
                conn.commit()
                stored += len(batch)
        return stored

    started, cpu0, pg0 = time.perf_counter(), time.process_time(), postgres_cpu_seconds(data_dir)
    with ThreadPoolExecutor(clients) as pool:
        events = sum(pool.map(load, range(clients)))
    elapsed = time.perf_counter() - started
    cpu = {"client": time.process_time() - cpu0, "postgres": postgres_cpu_seconds(data_dir) - pg0}
    return events / elapsed, {part: spent * 1e6 / events for part, spent in cpu.items()}


def micro(bodies: Path) -> dict[str, float]:
    """Per-event costs of the ingest pipeline in this process, milliseconds per 1,000 events.

    Canonical JSON is timed both ways on the same leaf entries: the RFC 8785 reference
    implementation and the orjson fast path the service uses. The body's direct parse is
    timed alone and as the service reads a body (``read_body``: with the proof that no key
    repeats), beside the strict second parse that proof saves.
    """
    line = bodies.read_text().splitlines()[0]
    raw = line.encode()
    doc = json.loads(line)
    now = datetime.now(UTC)
    limits = Settings().ingest

    def best(fn: Any, rounds: int = 5) -> float:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return min(times) * 1000

    parsed = BulkIn.model_validate(doc)
    drafts = parsed.events
    events = prepare_events(TenantId("bench"), drafts, limits=limits, now=now)
    entries = [leaf_entry(e) for e in events]
    return {
        "parse_and_validate_ms": best(lambda: BulkIn.model_validate(json.loads(json.dumps(doc)))),
        "parse_direct_ms": best(lambda: BulkIn.model_validate_json(raw)),
        "parse_direct_checked_ms": best(lambda: read_body(BulkIn, raw)),
        "strict_second_parse_ms": best(lambda: parse_body(raw)),
        "prepare_ms": best(
            lambda: prepare_events(TenantId("bench"), drafts, limits=limits, now=now)
        ),
        "jcs_reference_ms": best(lambda: [rfc8785.dumps(x) for x in entries]),
        "jcs_fast_path_ms": best(lambda: [canonical_json(x) for x in entries]),
    }


async def _direct_writes(url: str, batches: list[list[Event]]) -> float:
    pool = await open_pool(url, DatabaseSettings(pool_min_size=1, pool_max_size=2))
    writer = EventWriter(pool, group_commit=False)
    await writer.start()
    try:
        started = time.perf_counter()
        for batch in batches:
            await writer.write(TenantId(TENANT), batch)
        return sum(len(b) for b in batches) / (time.perf_counter() - started)
    finally:
        await writer.close()
        await pool.close()


def direct_write(url: str, bodies: Path) -> dict[str, float]:
    """Events/s through the storage path alone (no HTTP, one transaction per batch)."""
    doc = json.loads(bodies.read_text().splitlines()[1])
    drafts = [EventIn.model_validate(e) for e in doc["events"]]
    out = {}
    for size, count in ((1, 200), (30, 60), (1000, 4)):
        batches = [
            prepare_events(TenantId(TENANT), drafts[:size], limits=Settings().ingest,
                           now=datetime.now(UTC))
            for _ in range(count)
        ]  # fmt: skip
        out[str(size)] = asyncio.run(_direct_writes(url, batches))
    return out


def settle(url: str) -> None:
    """Vacuum and analyze after a phase that stored hundreds of thousands of rows, so that
    its autovacuum does not land in the scenario after it.

    No CHECKPOINT: after one, the first change to every page writes the whole page to the
    WAL, a cost the next scenario would pay for the benchmark's tidiness.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def seed_search_tenant(server: Process, data_dir: Path, bodies: Path, *, batches: int) -> None:
    """Store *batches* bulk bodies for the tenant the mixed scenario searches, once: its
    size, not the throughput of earlier scenarios, decides what a search costs."""
    ensure_tenant(server, data_dir, SEARCH_TENANT)
    token = token_for(data_dir, "user", SEARCH_TENANT)
    lines = bodies.read_text().splitlines()
    with httpx.Client(base_url=server.base, timeout=60) as client:
        for i in range(batches):
            response = client.post(
                "/api/v1/logs/bulk",
                content=lines[i % len(lines)],
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            response.raise_for_status()


def _summary(result: openloop.OpenLoopResult) -> dict[str, Any]:
    answered, refused = result.split()
    return {
        "offered_rps": result.offered_rps, "achieved_rps": result.achieved_rps,
        "errors": result.errors, "p50_ms": result.percentile(50),
        "p99_ms": result.percentile(99), "p999_ms": result.percentile(99.9),
        # Reads may be refused by design (503, admission): answered and refused apart.
        "answered": len(answered), "answered_p99_ms": openloop.percentile(answered, 99),
        "refused": len(refused), "refused_p99_ms": openloop.percentile(refused, 99),
    }  # fmt: skip


EXPORTS = 20  # concurrent exports in the mixed scenario's second variant


async def _export_load(
    server: Process, token: str, seconds: float, *, clients: int = EXPORTS
) -> dict[str, Any]:
    """*clients* auditors each exporting the search tenant's last 24 hours as NDJSON, one
    export after another for *seconds*; a refused export (503) waits its ``Retry-After``,
    as a well-behaved client does. Counts exports completed and refused, and bytes."""
    start = (datetime.now(UTC) - timedelta(hours=24)).isoformat()
    params = {"tenant_id": SEARCH_TENANT, "start": start, "format": "ndjson"}
    completed = refused = failed = 0
    received = 0
    deadline = time.perf_counter() + seconds

    async def one_client(client: httpx.AsyncClient) -> None:
        nonlocal completed, refused, failed, received
        while time.perf_counter() < deadline:
            try:
                async with client.stream("GET", "/api/v1/logs/export", params=params) as r:
                    if r.status_code == 503:
                        refused += 1
                        await r.aread()
                        wait = float(r.headers.get("retry-after", "1"))
                        await asyncio.sleep(min(wait, max(0.0, deadline - time.perf_counter())))
                        continue
                    async for chunk in r.aiter_raw():
                        received += len(chunk)
                        if time.perf_counter() >= deadline:
                            return  # cut off at the end of the window: not counted
                    if r.status_code == 200:
                        completed += 1
                    else:
                        failed += 1
            except httpx.HTTPError:
                failed += 1

    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=server.base, headers=headers, timeout=120,
                                 limits=limits) as client:  # fmt: skip
        await asyncio.gather(*(one_client(client) for _ in range(clients)))
    return {"clients": clients, "completed": completed, "refused": refused, "failed": failed,
            "mib": received / 2**20}  # fmt: skip


def _ingest_load(
    server: Process, bodies: Path, token: str, seconds: int, *, load: float = 1.0
) -> Any:
    """Single events offered at 1,000/s times *load* (open loop) for *seconds* (a coroutine)."""
    return openloop.run(
        "127.0.0.1", server.port, "/api/v1/logs", bodies.read_bytes().splitlines(), token,
        rate=round(1000 * load), seconds=seconds, connections=64,
    )  # fmt: skip


def _search_load(
    server: Process, paths: Path, token: str, seconds: int, *, load: float = 1.0
) -> Any:
    """Auditor searches offered at 50/s times *load* (open loop) for *seconds* (a coroutine)."""
    return openloop.run(
        "127.0.0.1", server.port, "", paths.read_bytes().splitlines(), token,
        rate=round(50 * load), seconds=seconds, connections=16, method="GET",
    )  # fmt: skip


def with_cores(
    server: Process, data_dir: Path, load: Coroutine[Any, Any, T]
) -> tuple[T, dict[str, Any]]:
    """What *load* returns once run, and the cores each side used meanwhile: the API
    processes, PostgreSQL (also by kind of process), and this process (the generator: it
    must not be what saturates).
    """
    started, gen0 = time.perf_counter(), time.process_time()
    api0 = server.cpu_seconds()
    with PostgresCpu(data_dir) as postgres:
        result = asyncio.run(load)
    wall = time.perf_counter() - started
    return result, {
        "api": (server.cpu_seconds() - api0) / wall,
        "postgres": sum(postgres.seconds.values()) / wall,
        "generator": (time.process_time() - gen0) / wall,
        "postgres_by_kind": {kind: spent / wall for kind, spent in postgres.seconds.items()},
    }


def mixed(
    server: Process,
    data_dir: Path,
    *,
    bodies: Path,
    paths: Path,
    seconds: int,
    load: float = 1.0,
) -> dict[str, Any]:
    """Searches at 50/s alone, then together with 1,000 single events/s (both open loop,
    from one generator, both rates times *load*), with the cores each side used. The
    ingest side alone is the fixed-rate scenario run just before."""
    auditor = token_for(data_dir, "auditor", SEARCH_TENANT)
    writer = token_for(data_dir, "user", TENANT)
    alone, alone_cores = with_cores(
        server, data_dir, _search_load(server, paths, auditor, seconds, load=load)
    )

    async def both() -> list[openloop.OpenLoopResult]:
        return list(await asyncio.gather(
            _search_load(server, paths, auditor, seconds, load=load),
            _ingest_load(server, bodies, writer, seconds, load=load),
        ))  # fmt: skip

    before = server.request_buckets(*INGEST_ROUTE)
    (searches, ingest), mixed_cores = with_cores(server, data_dir, both())
    after = server.request_buckets(*INGEST_ROUTE)

    async def with_exports() -> tuple[Any, ...]:
        return tuple(await asyncio.gather(
            _search_load(server, paths, auditor, seconds, load=load),
            _ingest_load(server, bodies, writer, seconds, load=load),
            _export_load(server, auditor, seconds),
        ))  # fmt: skip

    (x_searches, x_ingest, exports), x_cores = with_cores(server, data_dir, with_exports())
    x_served = served_within(after, server.request_buckets(*INGEST_ROUTE))
    # "served": the service's own view of ingest (bench.servers.served_within), beside the
    # generator's, which also counts waiting for one of its connections
    return {
        "search_alone": _summary(alone) | {"cores": alone_cores},
        "search_mixed": _summary(searches),
        "ingest_mixed": _summary(ingest) | {"served": served_within(before, after)},
        "mixed_cores": mixed_cores,
        "exports": {
            "search": _summary(x_searches), "ingest": _summary(x_ingest) | {"served": x_served},
            "exports": exports, "cores": x_cores,
        },
    }  # fmt: skip


def run_mixed(
    work: Path, *, workers: int, seconds: int, batches: int, load: float = 1.0
) -> dict[str, Any]:
    """The mixed scenario alone, on a fresh data dir (``python -m bench.mixed``): the
    search tenant seeded with *batches* x 1,000 events, then ingest alone, then
    :func:`mixed`, every offered rate times *load*. For checking it at small scale, and
    for finding the load this machine carries within the targets; ``make bench`` runs it
    at full load inside :func:`run_ingest`."""
    data_dir, log = work / "mixed-data", work / "mixed.log"
    bodies = write_bodies(work / "single.ndjson", count=5000, events_per_body=1, seed=1)
    bulk = write_bodies(work / "bulk.ndjson", count=min(batches, 20), events_per_body=1000,
                        seed=2)  # fmt: skip
    paths = write_search_paths(work / "searches.txt", count=500, seed=3, tenant=SEARCH_TENANT)
    server = start_auditline(data_dir, workers=workers, log=log)
    try:
        ensure_tenant(server, data_dir, TENANT)
        seed_search_tenant(server, data_dir, bulk, batches=batches)
        settle(EmbeddedPostgres(data_dir).url())
        token = token_for(data_dir, "user", TENANT)
        alone, cores = with_cores(
            server, data_dir, _ingest_load(server, bodies, token, seconds, load=load)
        )
        alone_summary = _summary(alone) | {"cores": cores}
        return {"workers": workers, "load": load, "ingest_alone": alone_summary} | mixed(
            server, data_dir, bodies=bodies, paths=paths, seconds=seconds, load=load
        )
    finally:
        server.stop()


def run_ingest(work: Path, *, runs: int, seconds: int, quick: bool) -> dict[str, Any]:
    data_dir = work / "data"
    log = work / "servers.log"
    single_bodies = write_bodies(work / "single.ndjson", count=5000, events_per_body=1, seed=1)
    bulk_bodies = write_bodies(work / "bulk.ndjson", count=20, events_per_body=1000, seed=2)
    search_paths = write_search_paths(
        work / "searches.txt", count=500, seed=3, tenant=SEARCH_TENANT
    )
    levels = [1, 8, 32] if quick else [1, 8, 32, 128]
    results: dict[str, Any] = {"levels": levels, "runs": runs, "seconds": seconds}
    configs = {
        "bare": {},
        "group_commit": {"group_commit": True},
        "no_group_commit": {"group_commit": False},
        "group_commit_2_workers": {"group_commit": True, "workers": 2},
    }
    single: dict[str, dict[int, list[dict[str, Any]]]] = {name: {} for name in configs}
    bulk_http: dict[str, list[float]] = {}
    copy_rates: list[float] = []
    # CPU milliseconds per 1,000 events stored: the client of the database (the API
    # processes, or the loading threads) and PostgreSQL
    bulk_cpu: dict[str, list[dict[str, float]]] = {}
    copy_cpu: list[dict[str, float]] = []
    # mean connections running or waiting (by kind), bulk configurations and raw COPY
    bulk_waits: dict[str, list[dict[str, float]]] = {}
    rss: list[tuple[float, int]] = []
    openloop_runs: list[dict[str, Any]] = []
    mixed_runs: list[dict[str, Any]] = []
    direct: list[dict[str, float]] = []
    results["micro"] = micro(bulk_bodies)

    for run in range(runs):
        for name, options in configs.items():
            server = start_bare(log) if name == "bare" else start_auditline(
                data_dir, log=log, **options
            )  # fmt: skip
            try:
                if name != "bare":
                    ensure_tenant(server, data_dir, TENANT)
                    ensure_tenant(server, data_dir, "bench-copy")
                token = token_for(data_dir, "user", TENANT)
                sampler = server.sample_rss() if name == "group_commit" and run == 0 else None
                for level in levels:
                    result = wrk(
                        server.base + "/api/v1/logs", bodies=single_bodies, token=token,
                        connections=level, seconds=seconds, server=server,
                    )  # fmt: skip
                    _check(result, f"{name} c={level}")
                    single[name].setdefault(level, []).append(asdict(result) | {"rps": result.rps})
                url = EmbeddedPostgres(data_dir).url() if name != "bare" else ""
                if name in ("group_commit", "group_commit_2_workers"):
                    pg0 = postgres_cpu_seconds(data_dir)
                    with PostgresWaits(url) as waits:
                        bulk = wrk(
                            server.base + "/api/v1/logs/bulk", bodies=bulk_bodies, token=token,
                            connections=4, seconds=seconds * 2, server=server,
                        )  # fmt: skip
                    _check(bulk, "bulk")
                    bulk_waits.setdefault(name, []).append(waits.mean)
                    bulk_http.setdefault(name, []).append(bulk.rps * 1000)
                    per_1000 = 1e6 / (bulk.requests * 1000)
                    bulk_cpu.setdefault(name, []).append({
                        "client": bulk.server_cpu_share * bulk.seconds * per_1000,
                        "postgres": (postgres_cpu_seconds(data_dir) - pg0) * per_1000,
                    })  # fmt: skip
                    settle(url)
                if name == "group_commit":
                    with PostgresWaits(url) as waits:
                        rate, cpu_ms = raw_copy(
                            url, bulk_bodies, clients=4, seconds=seconds * 2, data_dir=data_dir
                        )
                    copy_rates.append(rate)
                    bulk_waits.setdefault("raw_copy", []).append(waits.mean)
                    copy_cpu.append(cpu_ms)
                    settle(url)
                    direct.append(direct_write(url, bulk_bodies))
                    settle(url)
                    if run == 0:
                        seed_search_tenant(server, data_dir, bulk_bodies, batches=100)
                        settle(url)
                if name in ("group_commit", "group_commit_2_workers"):
                    workers = options.get("workers", 1)
                    fixed_run, cores = with_cores(server, data_dir, _ingest_load(
                        server, single_bodies, token, max(10, seconds)
                    ))  # fmt: skip
                    fixed = _summary(fixed_run) | {"cores": cores}
                    openloop_runs.append({"workers": workers, **fixed})
                    mixed_runs.append({"workers": workers, "ingest_alone": fixed} | mixed(
                        server, data_dir, bodies=single_bodies, paths=search_paths,
                        seconds=max(10, seconds),
                    ))  # fmt: skip
                if sampler is not None:
                    rss = list(server.rss_samples)
            finally:
                server.stop()

    results["single"] = single
    results["single_rps"] = {
        name: {level: summarize([r["rps"] for r in runs_]) for level, runs_ in per.items()}
        for name, per in single.items()
    }
    results["bulk_http_events_per_s"] = {name: summarize(v) for name, v in bulk_http.items()}
    results["raw_copy_events_per_s"] = summarize(copy_rates)
    results["bulk_cpu_ms_per_1000"] = {name: _cpu_parts(v) for name, v in bulk_cpu.items()}
    results["raw_copy_cpu_ms_per_1000"] = _cpu_parts(copy_cpu)
    results["bulk_postgres_waits"] = {
        name: {kind: summarize([m[kind] for m in means]) for kind in WAIT_KINDS}
        for name, means in bulk_waits.items()
    }
    results["bulk_ratio_to_copy"] = {
        name: summarize([h / c for h, c in zip(v, copy_rates, strict=True)])
        for name, v in bulk_http.items()
    }
    results["single_ratio_to_bare"] = {
        name: {
            level: summarize([
                mine["rps"] / bare["rps"]
                for mine, bare in zip(single[name][level], single["bare"][level], strict=True)
            ])
            for level in levels
        }
        for name in configs if name != "bare"
    }  # fmt: skip
    results["openloop_1000"] = openloop_runs
    results["mixed"] = mixed_runs
    results["direct_write_events_per_s"] = {
        size: summarize([d[size] for d in direct]) for size in (direct[0] if direct else {})
    }
    results["rss_samples"] = rss
    return results


def _cpu_parts(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Median (min-max) of each CPU part and of their total over the runs."""
    return {
        part: summarize([s[part] if part != "total" else sum(s.values()) for s in samples])
        for part in ("client", "postgres", "total")
    }


def _check(result: WrkResult, what: str) -> None:
    if result.status_errors or result.socket_errors:
        raise RuntimeError(
            f"{what}: {result.status_errors} non-2xx and {result.socket_errors} socket errors"
        )
