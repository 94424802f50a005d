"""Search benchmark: ``python -m bench.search`` seeds, then times the standard query mix.

What it does, in order:

1. starts (or reuses) an embedded PostgreSQL in ``bench/.work/search`` (or uses ``--url``),
   migrates it and seeds ``--events`` events over ``--tenants`` tenants with
   ``auditline.bench.seed`` unless the data is already there; then VACUUM ANALYZE;
2. *cold*: restarts PostgreSQL (empty shared buffers) and, when permitted, drops the OS
   page cache, then runs every query of the mix once;
3. *warm*: runs each query of the mix ``--runs`` times with varying parameters (tenants
   weighted by size, users, words, resources) and records p50/p95/p99;
4. EXPLAIN (ANALYZE, BUFFERS) of every statement one query of each kind issues;
5. export throughput (CSV, the largest tenant, all events) with the process's RSS
   sampled after every batch;
6. index and table sizes.

Latency is measured at the search backend (``PostgresSearch``: one read-only snapshot
transaction, the watermark, the SQL, building the domain objects), which is what the API
handler awaits; HTTP, JSON and the access record come on top and are measured separately
as ``api_*`` rows on a smaller sample. Results go to ``bench/results/search.json`` and
``bench/results/search-LABEL.json`` and the full report (tables and every plan) to
``docs/benchmarks/search-LABEL.md`` (``--label``, default ``latest``); the summary in
``docs/benchmarks/search.md`` is written by hand from those.
Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

from auditline.bench.seed import MARKERS, VOCABULARY, seed
from auditline.config import DatabaseSettings, Settings
from auditline.domain.access import Actor
from auditline.domain.tenants import TenantId
from auditline.search.model import PageRequest, SearchFilters, SearchQuery
from auditline.search.query import parse
from auditline.services import open_services
from auditline.storage.database import open_pool, set_tenant
from auditline.storage.embedded import EmbeddedPostgres
from auditline.storage.migrations import migrate
from auditline.storage.search import pages as store
from auditline.storage.search import stats as stats_store
from auditline.storage.search.backend import PostgresSearch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
REPORTS = ROOT / "docs" / "benchmarks"


@dataclass
class Query:
    """One kind of query in the mix: builds a (tenant, query, page) from a random source."""

    name: str
    describe: str
    build: Callable[[random.Random], tuple[TenantId, SearchQuery, PageRequest]]
    kind: str = "search"


@dataclass
class Context:
    tenants: list[tuple[TenantId, int]]
    now: datetime
    users: dict[str, list[str]] = field(default_factory=dict)
    resources: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    deep_cursors: dict[str, Any] = field(default_factory=dict)

    def tenant(self, rng: random.Random, *, large: bool = False) -> TenantId:
        if large:
            return self.tenants[0][0]
        names = [t for t, _ in self.tenants]
        weights = [n for _, n in self.tenants]
        return rng.choices(names, weights=weights)[0]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def the_mix(ctx: Context) -> list[Query]:
    day = timedelta(days=1)

    def window(days: float = 1) -> SearchFilters:
        return SearchFilters(start=ctx.now - days * day, end=ctx.now)

    def page(limit: int = 50) -> PageRequest:
        return PageRequest(limit=limit)

    def q(text: str, filters: SearchFilters | None = None) -> SearchQuery:
        return SearchQuery(filters=filters or SearchFilters(), q=parse(text))

    common_words = list(VOCABULARY[:5])
    mid_words = list(VOCABULARY[40:60])
    rare_words = [*MARKERS.keys()][:1] + list(VOCABULARY[-5:])

    def user_of(rng: random.Random, tenant: str) -> str:
        users = ctx.users[tenant]
        return users[min(int(rng.paretovariate(1.0)) - 1, len(users) - 1)]

    def resource_of(rng: random.Random, tenant: str) -> tuple[str, str]:
        resources = ctx.resources[tenant]
        return resources[min(int(rng.paretovariate(1.0)) - 1, len(resources) - 1)]

    def tenant_24h(rng: random.Random) -> tuple[TenantId, SearchQuery, PageRequest]:
        return ctx.tenant(rng), SearchQuery(filters=window()), page()

    def user_24h(rng: random.Random) -> tuple[TenantId, SearchQuery, PageRequest]:
        t = ctx.tenant(rng)
        f = SearchFilters(start=ctx.now - day, end=ctx.now, user_id=user_of(rng, t))
        return t, SearchQuery(filters=f), page()

    def action_resource(rng: random.Random) -> tuple[TenantId, SearchQuery, PageRequest]:
        t = ctx.tenant(rng)
        rtype, rid = resource_of(rng, t)
        f = SearchFilters(actions=("READ",), resource_type=rtype, resource_id=rid)
        return t, SearchQuery(filters=f), page()

    def word(words: list[str], *, large: bool) -> Callable[[random.Random], Any]:
        def build(rng: random.Random) -> tuple[TenantId, SearchQuery, PageRequest]:
            return ctx.tenant(rng, large=large), q(rng.choice(words)), page()

        return build

    def word_24h(rng: random.Random) -> tuple[TenantId, SearchQuery, PageRequest]:
        words = rng.choice([common_words, mid_words, rare_words])
        return ctx.tenant(rng), q(rng.choice(words), window()), page()

    def phrase(rng: random.Random) -> tuple[TenantId, SearchQuery, PageRequest]:
        text = rng.choice(['"signed in"', '"permission denied"', '"synchronised invoices"'])
        return ctx.tenant(rng, large=rng.random() < 0.5), q(text), page()

    def deep_page(rng: random.Random) -> tuple[TenantId, SearchQuery, PageRequest]:
        t = ctx.tenant(rng, large=True)
        query, request = ctx.deep_cursors[rng.choice(list(ctx.deep_cursors))]
        return t, query, request

    def stats_7d(rng: random.Random) -> tuple[TenantId, SearchQuery, PageRequest]:
        return ctx.tenant(rng, large=rng.random() < 0.5), SearchQuery(), page()

    return [
        Query("tenant_24h", "tenant + last 24 h, newest 50", tenant_24h),
        Query("user_24h", "tenant + user + last 24 h", user_24h),
        Query("action_resource", "tenant + action + resource (all time)", action_resource),
        Query("word_24h", "full-text word (common/mid/rare) + last 24 h", word_24h),
        Query(
            "word_common_large",
            "common word, largest tenant, all time",
            word(common_words, large=True),
        ),
        Query(
            "word_mid_large",
            "mid-frequency word, largest tenant, all time",
            word(mid_words, large=True),
        ),
        Query(
            "word_rare_large", "rare word, largest tenant, all time", word(rare_words, large=True)
        ),
        Query(
            "word_any",
            "any word, tenant by size, all time",
            word(common_words + mid_words + rare_words, large=False),
        ),
        Query("phrase", "phrase, all time", phrase),
        Query("deep_page", "page 41-ish via cursor, largest tenant", deep_page),
        Query("stats_7d", "stats for 7 days (interval hour)", stats_7d, kind="stats"),
    ]


async def run_one(backend: PostgresSearch, ctx: Context, query: Query, rng: random.Random) -> float:
    tenant, search_query, request = query.build(rng)
    began = time.perf_counter()
    if query.kind == "stats":
        await backend.stats(
            tenant, search_query, start=ctx.now - timedelta(days=7), end=ctx.now,
            interval="hour", top=10,
        )  # fmt: skip
    else:
        await backend.search(tenant, search_query, request)
    return (time.perf_counter() - began) * 1000


class Recorder:
    """A connection stand-in that remembers the statements storage sends."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.statements: list[tuple[Any, Any]] = []

    async def execute(self, statement: Any, params: Any = None) -> Any:
        self.statements.append((statement, params))
        return await self.conn.execute(statement, params)

    def cursor(self, **kwargs: Any) -> Any:
        return _RecordingCursor(self, self.conn.cursor(**kwargs))


class _RecordingCursor:
    def __init__(self, recorder: Recorder, cursor: Any) -> None:
        self._recorder = recorder
        self._cursor = cursor
        self.adapters = cursor.adapters

    async def execute(self, statement: Any, params: Any = None) -> _RecordingCursor:
        self._recorder.statements.append((statement, params))
        await self._cursor.execute(statement, params)
        return self

    async def fetchall(self) -> Any:
        return await self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return await self._cursor.fetchone()


async def explain(url: str, ctx: Context, mix: list[Query]) -> dict[str, list[str]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement one query of each kind issues."""
    pool = await open_pool(url, DatabaseSettings(url=url, pool_min_size=1, pool_max_size=1))
    plans: dict[str, list[str]] = {}
    try:
        for query in mix:
            rng = random.Random(7)
            tenant, search_query, request = query.build(rng)
            async with pool.connection() as conn, conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                await set_tenant(conn, tenant)
                recorder = Recorder(conn)
                if query.kind == "stats":
                    await stats_store.stats(
                        recorder, tenant, search_query, start=ctx.now - timedelta(days=7),  # type: ignore[arg-type]
                        end=ctx.now, interval="hour", top=10,
                    )  # fmt: skip
                else:
                    watermark = request.watermark or await store.read_watermark(conn, tenant)
                    await store.search_page(
                        recorder, tenant, search_query, request, watermark=watermark,  # type: ignore[arg-type]
                        tuning=store.SearchTuning(),
                    )  # fmt: skip
                texts = []
                for statement, params in recorder.statements:
                    cur = await conn.execute(
                        sql.SQL("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {}").format(statement)
                        if isinstance(statement, sql.Composable)
                        else "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement,
                        params,
                    )
                    texts.append("\n".join(r["QUERY PLAN"] for r in await cur.fetchall()))
                plans[query.name] = texts
    finally:
        await pool.close()
    return plans


async def export_throughput(url: str, tenant: TenantId) -> dict[str, Any]:
    """CSV export of a whole tenant through the path the API uses (``SearchService.export``,
    its two access records included)."""
    settings = Settings(database=DatabaseSettings(url=url, pool_min_size=1, pool_max_size=2))
    process = psutil.Process()
    rss: list[int] = [process.memory_info().rss]
    rows = 0
    size = 0
    async with open_services(settings) as services:

        def sample(n: int) -> None:
            nonlocal rows
            rows += n
            rss.append(process.memory_info().rss)

        began = time.perf_counter()
        chunks = await services.search.export(
            tenant, SearchQuery(), Actor("bench", "system"), fmt="csv", on_batch=sample
        )
        async for chunk in chunks:
            size += len(chunk)
        seconds = time.perf_counter() - began
    return {
        "tenant": tenant, "rows": rows, "bytes": size, "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds), "rss_start_mb": round(rss[0] / 2**20, 1),
        "rss_max_mb": round(max(rss) / 2**20, 1),
        "rss_after_first_batch_mb": round(rss[1] / 2**20, 1) if len(rss) > 1 else None,
    }  # fmt: skip


def sizes(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT i.relname, sum(pg_relation_size(t.relid))::bigint
                 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid,
                      LATERAL pg_partition_tree(i.oid) t
                WHERE x.indrelid = 'events'::regclass GROUP BY 1 ORDER BY 2 DESC"""
        ).fetchall()
        out = {name: int(n) for name, n in rows}
        for label, query in (
            ("events (heap + toast)",
             "SELECT sum(pg_table_size(relid)) FROM pg_partition_tree('events')"),
            ("event_ids (table + indexes)", "SELECT pg_total_relation_size('event_ids')"),
            ("event_rollups (table + indexes)", "SELECT pg_total_relation_size('event_rollups')"),
            ("event_rollup_heavy (table + indexes)",
             "SELECT pg_total_relation_size('event_rollup_heavy')"),
        ):  # fmt: skip
            row = conn.execute(query).fetchone()
            out[label] = int(row[0]) if row and row[0] is not None else 0
    return out


def drop_os_cache() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


async def prepare_context(url: str, tenants: int) -> Context:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT tenant_id, next_seq FROM tenant_log_heads
                WHERE tenant_id LIKE 'bench-%' ORDER BY next_seq DESC"""
        ).fetchall()
        ctx = Context(tenants=[(TenantId(t), int(n)) for t, n in rows[:tenants]],
                      now=datetime.now(UTC))  # fmt: skip
        for tenant, _ in ctx.tenants:
            users = conn.execute(
                """SELECT k1 FROM event_rollups WHERE tenant_id = %s AND dim = 'user'
                    GROUP BY k1 ORDER BY sum(n) DESC LIMIT 200""",
                (tenant,),
            ).fetchall()
            ctx.users[tenant] = [u[0] for u in users]
            resources = conn.execute(
                """SELECT k1, k2 FROM event_rollups WHERE tenant_id = %s AND dim = 'resource'
                    GROUP BY k1, k2 ORDER BY sum(n) DESC LIMIT 200""",
                (tenant,),
            ).fetchall()
            ctx.resources[tenant] = [(r[0], r[1]) for r in resources]
    return ctx


async def deep_cursors(backend: PostgresSearch, ctx: Context, pages: int = 40) -> None:
    """Positions ~2,000 events deep in the largest tenant, for the deep-page query."""
    tenant = ctx.tenants[0][0]
    for label, query in (
        ("all", SearchQuery()),
        ("user", SearchQuery(filters=SearchFilters(user_id=ctx.users[tenant][0]))),
        ("word", SearchQuery(q=parse(VOCABULARY[0]))),
    ):
        request = PageRequest(limit=50)
        for _ in range(pages):
            page = await backend.search(tenant, query, request)
            if page.next is None:
                break
            request = PageRequest(limit=50, after=page.next, watermark=page.watermark)
        ctx.deep_cursors[label] = (query, request)


async def _shares(url: str, tenant: str, size: int) -> dict[str, float]:
    """Each lexeme's share of the tenant's events (from its first 20 k)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT word, ndoc FROM ts_stat(format('SELECT search_vector FROM events
                                                       WHERE tenant_id = %%L LIMIT 20000',
                                                      %s::text))""",
            (tenant,),
        ).fetchall()
    return {w: n / min(size, 20_000) for w, n in rows}


def _nearest(share: dict[str, float], target: float) -> str:
    """The vocabulary word whose share of the tenant is closest to *target*."""
    return min((w for w in VOCABULARY if w in share), key=lambda w: abs(share[w] - target))


async def totals_facets_highlights(
    url: str, ctx: Context, runs: int, extra: list[tuple[TenantId, int]] | None = None
) -> dict[str, Any]:
    """Issue #23: totals, facets and highlights, side by side with the total as counted
    before (migration 0020 and the rollups: for text, the GIN index's keys with one
    primary-key probe each; for filters, the B-tree walk; both up to 10,000), and the
    planner estimate's error against exact counts.

    On the largest tenant of the seeded set and on any *extra* tenants
    (``--totals-tenant``)."""
    from auditline.search.model import FACET_FIELDS, FacetRequest
    from auditline.storage.search import facets as facet_store
    from auditline.storage.search import highlight as highlight_store

    tuning = store.SearchTuning()
    timings: dict[str, list[float]] = {}
    answers: dict[str, dict[str, Any]] = {}
    pool = await open_pool(url, DatabaseSettings(url=url, pool_min_size=1, pool_max_size=2))
    try:
        backend = PostgresSearch(pool, tuning)
        for tenant, size in [ctx.tenants[0], *(extra or [])]:
            share = await _shares(url, tenant, size)
            nearest = partial(_nearest, share)
            queries = {
                "word_10pct": SearchQuery(q=parse(nearest(0.10))),
                "word_common": SearchQuery(q=parse(nearest(0.30))),
                "word_mid": SearchQuery(q=parse(nearest(0.01))),
                "word_rare": SearchQuery(q=parse("quarantine")),
                "filters_tenant": SearchQuery(),
                "filters_7d": SearchQuery(filters=SearchFilters(
                    start=ctx.now - timedelta(days=7, minutes=17), end=ctx.now)),
                "filters_action_7d": SearchQuery(filters=SearchFilters(
                    start=ctx.now - timedelta(days=7), end=ctx.now, actions=("UPDATE",))),
            }  # fmt: skip
            for label, query in queries.items():
                key = f"{tenant}/{label}"
                async with backend._snapshot(tenant, timeout_ms=120_000) as conn:
                    mark = await store.read_watermark(conn, tenant)
                    exact = await store.count_matches(conn, tenant, query, mark, limit=None)
                    estimate = await store.planner_estimate(conn, tenant, query, mark)
                    total = await store.search_total(conn, tenant, query, mark, tuning=tuning)
                    facets = await facet_store.facets(
                        conn, tenant, query, FacetRequest(FACET_FIELDS), watermark=mark,
                        tuning=tuning,
                    )  # fmt: skip
                answers[key] = {
                    "q": query.describe(), "exact": exact.value, "estimate": estimate,
                    "estimate_error_pct": round(
                        100 * (estimate - exact.value) / max(1, exact.value), 1),
                    "total": [total.value, total.relation],
                    "facets_partial": facets.partial,
                }  # fmt: skip
                calls: list[tuple[str, Callable[[Any], Any]]] = [
                    ("total", lambda c, q=query, m=mark, t=tenant: store.search_total(
                        c, t, q, m, tuning=tuning)),
                    ("total_before", lambda c, q=query, m=mark, t=tenant: store.count_matches(
                        c, t, q, m, limit=10_000, via_keys=True)),
                    ("facets", lambda c, q=query, m=mark, t=tenant: facet_store.facets(
                        c, t, q, FacetRequest(FACET_FIELDS), watermark=m, tuning=tuning)),
                ]  # fmt: skip
                for name, call in calls:
                    timings[f"{key}/{name}"] = samples = []
                    for _ in range(runs):
                        began = time.perf_counter()
                        async with backend._snapshot(tenant) as conn:
                            await call(conn)
                        samples.append((time.perf_counter() - began) * 1000)
                if query.q is not None:
                    page = await backend.search(tenant, query, PageRequest(limit=50))
                    timings[f"{key}/highlight_page50"] = samples = []
                    for _ in range(runs):
                        began = time.perf_counter()
                        async with backend._snapshot(tenant) as conn:
                            await highlight_store.highlight(conn, query.q, page.items)
                        samples.append((time.perf_counter() - began) * 1000)
    finally:
        await pool.close()
    return {"answers": answers, "timings": summarise(timings)}


async def _extra_tenants(url: str, names: list[str]) -> list[tuple[TenantId, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tenant_id, next_seq FROM tenant_log_heads WHERE tenant_id = ANY(%s)",
            (names,),
        ).fetchall()
    return [(TenantId(t), int(n)) for t, n in rows]


async def timed_mix(
    url: str, ctx: Context, mix: list[Query], *, runs: int, seed_value: int
) -> dict[str, list[float]]:
    pool = await open_pool(url, DatabaseSettings(url=url, pool_min_size=1, pool_max_size=2))
    timings: dict[str, list[float]] = {q.name: [] for q in mix}
    try:
        backend = PostgresSearch(pool)
        if not ctx.deep_cursors:
            await deep_cursors(backend, ctx)
        rng = random.Random(seed_value)
        for _ in range(runs):
            for query in mix:
                timings[query.name].append(await run_one(backend, ctx, query, rng))
    finally:
        await pool.close()
    return timings


async def api_sample(url: str, data_dir: Path, ctx: Context, runs: int) -> dict[str, list[float]]:
    """The same kinds of request through the whole API (HTTP schema, JSON, access record)."""
    import httpx

    from auditline.app import create_app
    from auditline.config import RateLimitSettings, Settings
    from auditline.runtime import signing_key
    from auditline.security.tokens import issue_token

    settings = Settings(
        data_dir=data_dir, database=DatabaseSettings(url=url, pool_min_size=2, pool_max_size=4),
        rate_limits=RateLimitSettings(enabled=False),
    )  # fmt: skip
    app = create_app(settings)
    out: dict[str, list[float]] = {"api_tenant_24h": [], "api_word_24h": [], "api_stats_7d": []}
    rng = random.Random(11)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            for _ in range(runs):
                tenant = ctx.tenant(rng)
                token = issue_token(signing_key(settings), settings.auth, subject="bench",
                                    role="auditor", tenants=[tenant], ttl_seconds=600)  # fmt: skip
                headers = {"Authorization": f"Bearer {token}"}
                start = (ctx.now - timedelta(days=1)).isoformat()
                for name, path, params in (
                    ("api_tenant_24h", "/api/v1/logs", {"start": start}),
                    ("api_word_24h", "/api/v1/logs", {"start": start, "q": rng.choice(VOCABULARY)}),
                    ("api_stats_7d", "/api/v1/logs/stats",
                     {"start": (ctx.now - timedelta(days=7)).isoformat()}),
                ):  # fmt: skip
                    began = time.perf_counter()
                    response = await http.get(path, params=params, headers=headers)
                    out[name].append((time.perf_counter() - began) * 1000)
                    response.raise_for_status()
    return out


def summarise(timings: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "n": len(values),
            "p50_ms": round(percentile(values, 0.50), 2),
            "p95_ms": round(percentile(values, 0.95), 2),
            "p99_ms": round(percentile(values, 0.99), 2),
            "max_ms": round(max(values), 2),
            "mean_ms": round(statistics.fmean(values), 2),
        }
        for name, values in timings.items()
        if values
    }


def write_report(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"## Search benchmark: {result['label']}",
        "",
        f"Data: {result['events']:,} events over {result['tenants']} tenants and "
        f"{result['days']} days (`auditline bench seed`, seed {result['seed']}); largest tenant "
        f"{result['largest'][1]:,} events. Machine: {result['environment']['cpus']} CPUs, "
        f"PostgreSQL {result['environment']['postgres']}, shared_buffers "
        f"{result['environment']['shared_buffers']}. Produced by `python -m bench.search` on "
        f"{result['finished_at']}.",
        "",
        "Latency at the search backend (snapshot transaction + watermark + SQL + decoding);"
        " `api_*` rows are the full HTTP path including the access record's durable commit.",
        "",
        "### Warm",
        "",
        "| query | what | n | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    describe = result["mix"]
    for name, s in result["warm"].items():
        lines.append(
            f"| {name} | {describe.get(name, '')} | {s['n']} | {s['p50_ms']} | {s['p95_ms']} "
            f"| {s['p99_ms']} | {s['max_ms']} |"
        )
    overall = result["warm_overall"]
    searches = result["warm_search_only"]
    lines += [
        f"| **mix** | all backend queries | {overall['n']} | {overall['p50_ms']} | "
        f"{overall['p95_ms']} | {overall['p99_ms']} | {overall['max_ms']} |",
        f"| **searches** | the mix without stats_7d | {searches['n']} | {searches['p50_ms']} | "
        f"{searches['p95_ms']} | {searches['p99_ms']} | {searches['max_ms']} |",
        "",
        f"### Cold (PostgreSQL restarted; OS page cache dropped: {result['os_cache_dropped']})",
        "",
        "| query | first run ms |",
        "|---|---:|",
    ]
    for name, ms in result["cold"].items():
        lines.append(f"| {name} | {ms:.1f} |")
    e = result["export"]
    lines += [
        "",
        "### Export",
        "",
        f"CSV export of `{e['tenant']}`: {e['rows']:,} rows, {e['bytes'] / 2**20:.1f} MiB in "
        f"{e['seconds']} s = **{e['rows_per_second']:,} rows/s**; process RSS {e['rss_start_mb']}"
        f" MiB at start, {e['rss_after_first_batch_mb']} MiB after the first batch, "
        f"{e['rss_max_mb']} MiB at most.",
        "",
        "### Sizes",
        "",
        "| relation | MiB |",
        "|---|---:|",
    ]
    for name, n in result["sizes"].items():
        lines.append(f"| {name} | {n / 2**20:.1f} |")
    lines += ["", "### Plans (EXPLAIN ANALYZE, one query of each kind, warm)", ""]
    for name, plans in result["plans"].items():
        lines.append(f"<details><summary>{name}</summary>\n")
        for plan in plans:
            lines += ["```", plan, "```", ""]
        lines.append("</details>\n")
    path.write_text("\n".join(lines) + "\n")


async def main_async(args: argparse.Namespace) -> None:
    work = ROOT / "bench" / ".work" / "search"
    server: EmbeddedPostgres | None = None
    if args.url:
        url = args.url
    else:
        work.mkdir(parents=True, exist_ok=True)
        pgdata = Path(args.pgdata) if args.pgdata else work / "pg"
        # fsync off only speeds up seeding; reads do not depend on it.
        server = EmbeddedPostgres(pgdata, settings={"fsync": "off"})
        server.start()
        server.adopt()
        url = server.url(args.database)
        if args.database != "postgres":
            with psycopg.connect(server.url(), autocommit=True) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (args.database,)
                ).fetchone()
                if exists is None:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.database))
                    )
    try:
        await migrate(url, app_role="auditline_app")
        if args.only_totals:  # issue #23's figures alone, on data already seeded
            ctx = await prepare_context(url, args.tenants)
            extra = await _extra_tenants(url, args.totals_tenant)
            totals = await totals_facets_highlights(url, ctx, runs=args.runs, extra=extra)
            RESULTS.mkdir(parents=True, exist_ok=True)
            name = f"search-totals-{args.label or 'latest'}.json"
            (RESULTS / name).write_text(json.dumps(totals, indent=2, default=str))
            print(json.dumps(totals, indent=1, default=str))
            return
        with psycopg.connect(url) as conn:
            row = conn.execute(
                """SELECT coalesce(sum(next_seq), 0) FROM tenant_log_heads
                    WHERE tenant_id LIKE 'bench-%'"""
            ).fetchone()
        present = int(row[0]) if row else 0
        if present < args.events:
            print(f"seeding {args.events:,} events over {args.tenants} tenants ...", flush=True)
            pool = await open_pool(url, DatabaseSettings(url=url, pool_min_size=1, pool_max_size=2))
            try:
                report = await seed(pool, events=args.events, tenants=args.tenants,
                                    days=args.days, seed_value=args.seed)  # fmt: skip
            finally:
                await pool.close()
            print(f"seeded in {report.seconds:.0f} s", flush=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) events")
            conn.execute("VACUUM (ANALYZE) event_rollups")
            conn.execute("VACUUM (ANALYZE) event_rollup_heavy")
            conn.execute("VACUUM (ANALYZE) tenant_log_heads")
            settings_row = conn.execute(
                "SELECT current_setting('server_version'), current_setting('shared_buffers')"
            ).fetchone()
        ctx = await prepare_context(url, args.tenants)
        mix = the_mix(ctx)

        cold: dict[str, float] = {}
        dropped = False
        if server is not None:
            server.stop(force=True)
            dropped = drop_os_cache()
            server.start()
            server.adopt()
            cold_timings = await timed_mix(url, ctx, mix, runs=1, seed_value=1)
            cold = {k: v[0] for k, v in cold_timings.items()}
        warm = await timed_mix(url, ctx, mix, runs=args.runs, seed_value=args.seed)
        api = await api_sample(url, work / "data", ctx, runs=max(10, args.runs // 5))
        plans = await explain(url, ctx, mix)
        exported = await export_throughput(url, ctx.tenants[0][0])
        totals = await totals_facets_highlights(url, ctx, runs=max(10, args.runs // 5))
        result = {
            "label": args.label or f"{sum(n for _, n in ctx.tenants):,} events",
            "events": sum(n for _, n in ctx.tenants),
            "tenants": len(ctx.tenants),
            "days": args.days,
            "seed": args.seed,
            "largest": ctx.tenants[0],
            "mix": {q.name: q.describe for q in mix},
            "warm": summarise({**warm, **api}),
            "warm_overall": summarise({"all": [v for vs in warm.values() for v in vs]})["all"],
            "warm_search_only": summarise(
                {"search": [v for k, vs in warm.items() if k != "stats_7d" for v in vs]}
            )["search"],
            "cold": cold,
            "os_cache_dropped": dropped,
            "export": exported,
            "totals_facets_highlights": totals,
            "sizes": sizes(url),
            "plans": plans,
            "environment": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "postgres": settings_row[0] if settings_row else "?",
                "shared_buffers": settings_row[1] if settings_row else "?",
            },
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        label = args.label or "latest"
        for name in ("search.json", f"search-{label}.json"):
            (RESULTS / name).write_text(json.dumps(result, indent=2, default=str))
        write_report(result, REPORTS / f"search-{label}.md")
        print(json.dumps({"warm": result["warm"], "overall": result["warm_overall"],
                          "cold": cold, "export": exported}, indent=1))  # fmt: skip
    finally:
        if server is not None and not args.keep_server:
            with contextlib.suppress(Exception):
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=100, help="warm runs per query kind")
    parser.add_argument("--url", help="use this database instead of an embedded server")
    parser.add_argument(
        "--pgdata", help="embedded server directory (default bench/.work/search/pg)"
    )
    parser.add_argument("--database", default="postgres", help="database on that server")
    parser.add_argument("--keep-server", action="store_true")
    parser.add_argument(
        "--totals-tenant",
        action="append",
        default=[],
        help="also measure totals, facets and highlights on this tenant (repeatable)",
    )
    parser.add_argument(
        "--only-totals",
        action="store_true",
        help="only the totals, facets and highlights figures (issue #23), on seeded data",
    )
    parser.add_argument(
        "--label",
        help="also write bench/results/search-LABEL.json, docs/benchmarks/search-LABEL.md",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
