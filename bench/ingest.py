"""Ingest scenarios: bulk vs raw COPY, single events vs the bare ceiling, fixed-rate latency.

Every comparison is a ratio of two figures measured in the same run on the same machine,
because absolute numbers drift on shared hardware.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import rfc8785

from auditline.api.schemas import BulkIn, EventIn
from auditline.config import DatabaseSettings, Settings
from auditline.domain.events import Event, TenantId
from auditline.ingest.prepare import prepare_events
from auditline.ingest.writer import EventWriter
from auditline.integrity.canonical import canonical_json
from auditline.integrity.leaf import leaf_entry
from auditline.runtime import signing_key
from auditline.security.tokens import issue_token
from auditline.storage.database import open_pool
from auditline.storage.embedded import EmbeddedPostgres
from auditline.storage.events import COLUMNS, copy_row
from bench import openloop
from bench.servers import Process, WrkResult, start_auditline, start_bare, wrk
from bench.workload import write_bodies

TENANT = "bench"


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


def raw_copy(url: str, bodies: Path, *, clients: int, batches_per_client: int) -> float:
    """Events/s for plain COPY of the same prepared rows straight into ``events``.

    The practical ceiling for bulk ingest: same table, same indexes, same row contents,
    one durable commit per 1,000-row batch, *clients* connections in parallel. Nothing of
    the service's work (HTTP, JSON, validation, masking, hashing, idempotency, RLS) is in it.
    """
    now = datetime.now(UTC)
    batches = []
    lines = bodies.read_text().splitlines()
    for i in range(clients * batches_per_client):
        doc = json.loads(lines[i % len(lines)])
        drafts = [EventIn.model_validate(e).to_draft() for e in doc["events"]]
        events = prepare_events(TenantId("bench-copy"), drafts, limits=Settings().ingest, now=now)
        batches.append([copy_row(e, n) for n, e in enumerate(events)])
    copy_sql = f"COPY events ({', '.join(COLUMNS)}) FROM STDIN"

    def load(my_batches: list[list[tuple[Any, ...]]]) -> None:
        with psycopg.connect(url) as conn:
            conn.execute("SET synchronous_commit = on")
            for batch in my_batches:
                with conn.cursor().copy(copy_sql) as copy:  # type: ignore[arg-type]
                    for row in batch:
                        copy.write_row(row)
                conn.commit()

    shares = [batches[i::clients] for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(load, shares))
    elapsed = time.perf_counter() - started
    return sum(len(b) for b in batches) / elapsed


def micro(bodies: Path) -> dict[str, float]:
    """Per-event costs of the ingest pipeline in this process, milliseconds per 1,000 events.

    Canonical JSON is timed both ways on the same leaf entries: the RFC 8785 reference
    implementation and the orjson fast path the service uses.
    """
    doc = json.loads(bodies.read_text().splitlines()[0])
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
    drafts = [e.to_draft() for e in parsed.events]
    events = prepare_events(TenantId("bench"), drafts, limits=limits, now=now)
    entries = [leaf_entry(e) for e in events]
    return {
        "parse_and_validate_ms": best(lambda: BulkIn.model_validate(json.loads(json.dumps(doc)))),
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
    drafts = [EventIn.model_validate(e).to_draft() for e in doc["events"]]
    out = {}
    for size, count in ((1, 200), (30, 60), (1000, 4)):
        batches = [
            prepare_events(TenantId(TENANT), drafts[:size], limits=Settings().ingest,
                           now=datetime.now(UTC))
            for _ in range(count)
        ]  # fmt: skip
        out[str(size)] = asyncio.run(_direct_writes(url, batches))
    return out


def run_ingest(work: Path, *, runs: int, seconds: int, quick: bool) -> dict[str, Any]:
    data_dir = work / "data"
    log = work / "servers.log"
    single_bodies = write_bodies(work / "single.ndjson", count=5000, events_per_body=1, seed=1)
    bulk_bodies = write_bodies(work / "bulk.ndjson", count=20, events_per_body=1000, seed=2)
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
    rss: list[tuple[float, int]] = []
    openloop_runs: list[dict[str, Any]] = []
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
                if name in ("group_commit", "group_commit_2_workers"):
                    bulk = wrk(
                        server.base + "/api/v1/logs/bulk", bodies=bulk_bodies, token=token,
                        connections=4, seconds=seconds * 2, server=server,
                    )  # fmt: skip
                    _check(bulk, "bulk")
                    bulk_http.setdefault(name, []).append(bulk.rps * 1000)
                if name == "group_commit":
                    url = EmbeddedPostgres(data_dir).url()
                    copy_rates.append(raw_copy(url, bulk_bodies, clients=4, batches_per_client=8))
                    direct.append(direct_write(url, bulk_bodies))
                if name in ("group_commit", "group_commit_2_workers"):
                    fixed = asyncio.run(
                        openloop.run(
                            "127.0.0.1", int(server.base.rsplit(":", 1)[1]), "/api/v1/logs",
                            single_bodies.read_bytes().splitlines(), token,
                            rate=1000, seconds=max(10, seconds), connections=64,
                        )
                    )  # fmt: skip
                    openloop_runs.append(
                        {"workers": options.get("workers", 1),
                         "offered_rps": fixed.offered_rps, "achieved_rps": fixed.achieved_rps,
                         "errors": fixed.errors, "p50_ms": fixed.percentile(50),
                         "p99_ms": fixed.percentile(99), "p999_ms": fixed.percentile(99.9)}
                    )  # fmt: skip
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
    results["direct_write_events_per_s"] = {
        size: summarize([d[size] for d in direct]) for size in (direct[0] if direct else {})
    }
    results["rss_samples"] = rss
    return results


def _check(result: WrkResult, what: str) -> None:
    if result.status_errors or result.socket_errors:
        raise RuntimeError(
            f"{what}: {result.status_errors} non-2xx and {result.socket_errors} socket errors"
        )
