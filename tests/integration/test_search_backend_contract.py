"""The search backend contract: every operation answers from the caller's tenant alone.

Each backend runs the same tests, written against the protocol only (``SearchBackend``,
and ``EncodingBackend`` when the backend has it), on two tenants whose data overlap
wherever a missing tenant condition could show (``tenant_overlap``). Every answer is
compared with the tenant's own matching events as the test wrote them: exactly those,
in order, never one of the other tenant's.

PostgreSQL runs twice. ``postgres-rls`` uses the application role, so row-level security
is in force underneath. ``postgres-bypass`` uses the superuser the test server logs in
as, which bypasses row-level security: there, as for OpenSearch, the explicit tenant
condition of each query is the only wall, and these tests are what proves it.

``opensearch`` runs on a real node (the ``opensearch`` session fixture), with both tenants'
documents in one shared index of one shard, so routing cannot keep them apart by accident:
the tenant filter the backend adds is the only wall. It is the production arrangement,
``RoutedSearch`` sending searches, exports and counts to OpenSearch, and statistics
answered by PostgreSQL (OpenSearch is not a ``StatsBackend``; the service is given
PostgreSQL's for statistics whatever answers searches).
The events reach the index as in production: stored in PostgreSQL, then indexed by
``SearchIndexer`` following each tenant's ``seq``.

**Adding a backend** (OpenSearch): add an entry to ``BACKENDS``, an async context manager
that takes the database URL and the data (already stored in PostgreSQL, the source of
truth; index it from there) and yields a :class:`BackendUnderTest`. ``plans`` names ways
of answering the same data (one is enough; PostgreSQL forces each of its plan choices);
``store`` writes events as ingest would, visible to the backend when it returns.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
import pytest
from psycopg_pool import AsyncConnectionPool

from auditline.config import DatabaseSettings
from auditline.domain.events import Event
from auditline.domain.tenants import TenantId
from auditline.indexing.service import SearchIndexer
from auditline.opensearch.backend import OpenSearchSearch
from auditline.search.backend import EncodingBackend, SearchBackend, StatsBackend
from auditline.search.export import ExportFormat
from auditline.search.model import (
    FACET_FIELDS,
    FacetRequest,
    Interval,
    Order,
    PageRequest,
    SearchQuery,
    Stats,
    Total,
)
from auditline.search.routing import RoutedSearch
from auditline.storage.database import Connection, open_pool, set_tenant
from auditline.storage.search import pages as search_store
from auditline.storage.search import stats as stats_store
from auditline.storage.search.backend import PostgresSearch
from auditline.storage.search.pages import SearchTuning
from tests.integration.conftest import ACME, GLOBEX
from tests.integration.opensearch_fixtures import opensearch_index
from tests.integration.tenant_overlap import (
    QUIET_HOUR,
    SHARED,
    TENANTS,
    Key,
    Overlap,
    build,
    cases,
    later_events,
    shared_id,
    stats_over_time,
    stats_with_filters,
    store,
)
from tests.services.fixtures import Endpoint

# ---------------------------------------------------------------------------------------
# The backends


@dataclass(frozen=True)
class BackendUnderTest:
    plans: Mapping[str, SearchBackend]
    """Ways of answering, by name: each must give every answer below."""
    stats: Mapping[str, StatsBackend]
    """Who answers statistics with this backend, by name (only PostgreSQL does)."""
    store: Callable[[Sequence[Event]], Awaitable[None]]
    """Writes events of one tenant; the backend sees them when it returns."""


BackendFactory = Callable[[str, Overlap], AbstractAsyncContextManager[BackendUnderTest]]


class PostgresPlan(PostgresSearch):
    """``PostgresSearch`` with its statistics plan forced (None: chosen as in production).

    Its search plan is chosen with ``SearchTuning`` (see ``POSTGRES_PLANS``).
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        tuning: SearchTuning,
        *,
        prune: bool | None = None,
        end_from_rollup: bool | None = None,
    ) -> None:
        super().__init__(pool, tuning)
        self._pool_for_stats = pool
        self._prune = prune
        self._end_from_rollup = end_from_rollup

    async def stats(
        self,
        tenant: TenantId,
        query: SearchQuery,
        *,
        start: datetime,
        end: datetime,
        interval: Interval,
        top: int,
    ) -> Stats:
        if self._prune is None and self._end_from_rollup is None:
            return await super().stats(
                tenant, query, start=start, end=end, interval=interval, top=top
            )
        async with self._pool_for_stats.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            await set_tenant(conn, tenant)
            return await stats_store.stats(
                conn, tenant, query, start=start, end=end, interval=interval, top=top,
                prune=self._prune, end_from_rollup=self._end_from_rollup,
            )  # fmt: skip


POSTGRES_PLANS: dict[str, dict[str, Any]] = {
    # A single walk answers every full-text page (a tenant holds fewer rows than
    # probe_rows); top lists summed (too few events to prune); a trailing partial hour
    # counted whichever way is cheaper.
    "default": {"tuning": SearchTuning()},
    # First walks of 3 rows, then a second walk sized from the matches found (the text
    # index when there were none); top lists proven from the heavy hitters where they can
    # be; a trailing partial hour counted as its rollup minus its events from the end on.
    "walk twice, prune": {
        "tuning": SearchTuning(probe_rows=3, probe_max_rows=1_000_000),
        "prune": True,
        "end_from_rollup": True,
    },
    # First walks of 3 rows, then the text index; top lists summed; a trailing partial
    # hour counted from its events; totals above 5 answered as "at least 5".
    "text index, sum": {
        "tuning": SearchTuning(probe_rows=3, probe_max_rows=0, exact_total_limit=5),
        "prune": False,
        "end_from_rollup": False,
    },
}


def postgres(app_role: str | None) -> BackendFactory:
    @asynccontextmanager
    async def open_backend(database_url: str, data: Overlap) -> AsyncIterator[BackendUnderTest]:
        settings = DatabaseSettings(app_role=app_role, pool_min_size=1, pool_max_size=2)
        pool = await open_pool(database_url, settings)
        try:
            async with pool.connection() as conn, conn.transaction():
                await set_tenant(conn, ACME)
                cur = await conn.execute("SELECT count(DISTINCT tenant_id) AS n FROM events")
                # The variant is what it says: the app role sees one tenant, the bypass both.
                assert await cur.fetchone() == {"n": 1 if app_role else 2}
            plans = {name: PostgresPlan(pool, **plan) for name, plan in POSTGRES_PLANS.items()}
            yield BackendUnderTest(plans=plans, stats=plans, store=partial(store, pool))
        finally:
            await pool.close()

    return open_backend


def opensearch_backend(endpoint: Endpoint) -> BackendFactory:
    @asynccontextmanager
    async def open_backend(database_url: str, data: Overlap) -> AsyncIterator[BackendUnderTest]:
        pool = await open_pool(
            database_url,
            DatabaseSettings(app_role="auditline_app", pool_min_size=1, pool_max_size=2),
        )
        try:
            async with opensearch_index(endpoint) as index:
                indexer = SearchIndexer(pool, index, batch_size=50)
                for tenant in TENANTS:
                    run = await indexer.index_tenant(tenant)
                    assert run.indexed >= len(data.events[tenant])

                async def store_and_index(events: Sequence[Event]) -> None:
                    await store(pool, events)
                    await indexer.index_tenant(events[0].tenant_id)

                def routed(exact_total_limit: int) -> RoutedSearch:
                    opensearch = OpenSearchSearch(
                        index, indexer.watermark, exact_total_limit=exact_total_limit
                    )
                    return RoutedSearch(
                        PostgresSearch(pool), filters=opensearch, text=opensearch, fallback=False
                    )

                # The same answers with a small exact-total threshold ("at least 5").
                plans: dict[str, SearchBackend] = {
                    "routed": routed(10_000),
                    "totals capped": routed(5),
                }
                # As the service is wired: statistics from PostgreSQL's rollups.
                stats = {"postgres rollups": PostgresSearch(pool)}
                yield BackendUnderTest(plans=plans, stats=stats, store=store_and_index)
        finally:
            await pool.close()

    return open_backend


BACKENDS: dict[str, BackendFactory | None] = {
    "postgres-rls": postgres("auditline_app"),
    "postgres-bypass": postgres(None),
    "opensearch": None,  # needs the node: built from the session fixture on demand
}


@pytest.fixture
async def data(pool: AsyncConnectionPool[Connection]) -> Overlap:
    """The overlapping data of acme and globex, stored in PostgreSQL."""
    overlap = build()
    for tenant in TENANTS:
        await store(pool, overlap.events[tenant])
    return overlap


@pytest.fixture(params=list(BACKENDS))
async def backend(
    request: pytest.FixtureRequest, database_url: str, data: Overlap
) -> AsyncIterator[BackendUnderTest]:
    factory = BACKENDS[request.param]
    if factory is None:  # only now, so a run without OpenSearch tests starts no node
        factory = opensearch_backend(request.getfixturevalue("opensearch"))
    async with factory(database_url, data) as under_test:
        yield under_test


# ---------------------------------------------------------------------------------------
# What the tests run


def keys(events: Sequence[Event]) -> list[Key]:
    return [(e.tenant_id, e.id) for e in events]


def page_size(expected: Sequence[Key]) -> int:
    """About three pages (or batches) for any result."""
    return max(2, len(expected) // 3 + 1)


async def page_through(
    backend: SearchBackend,
    tenant: TenantId,
    query: SearchQuery,
    order: Order,
    limit: int,
    *,
    between_pages: Callable[[], Awaitable[None]] | None = None,
) -> tuple[list[Key], Total | None]:
    """Every event of a paging session, and the first page's total."""
    request = PageRequest(limit=limit, order=order, include_total=True)
    page = await backend.search(tenant, query, request)
    found, total = keys([s.event for s in page.items]), page.total
    if between_pages is not None:
        await between_pages()
    while page.next is not None:
        assert len(page.items) == limit  # only the last page may be short
        request = PageRequest(limit=limit, order=order, after=page.next, watermark=page.watermark)
        page = await backend.search(tenant, query, request)
        found += keys([s.event for s in page.items])
    return found, total


def total_agrees(total: Total | None, n: int) -> bool:
    """An exact total is the count; a lower bound is below it (the threshold was reached);
    an estimate is only labelled as one (its error is measured, not promised)."""
    if total is None:
        return False
    if total.relation == "approx":
        return total.value >= 0
    return total.value == n if total.exact else total.value < n


ORDERS: tuple[Order, Order] = ("desc", "asc")


def rotate(i: int) -> Order:
    """The order for the *i*-th run: callers shift *i* by plan and case, so each plan sees
    both orders and each case both orders across plans, at half the cost of every pair."""
    return ORDERS[i % 2]


async def check_pages(plan: SearchBackend, data: Overlap, names: Sequence[str], shift: int) -> None:
    for i, name in enumerate(names):
        query = cases(data)[name]
        order = rotate(i + shift)
        for tenant in TENANTS:
            expected = data.expected(tenant, query, order)
            found, total = await page_through(plan, tenant, query, order, page_size(expected))
            assert found == expected, (name, tenant, order)
            assert total_agrees(total, len(expected)), (name, tenant, order, total)


def same_stats(actual: Stats, expected: Stats) -> bool:
    """Equal in every count; where the answer came from is the backend's business."""
    return replace(actual, source=expected.source) == expected


async def check_stats(plan: StatsBackend, data: Overlap, *, time_only: bool) -> None:
    runs = stats_over_time(data) if time_only else stats_with_filters(data)
    for query, start, end, interval in runs:
        for tenant in TENANTS:
            for top in (1, 10):  # 10: longer than any list here
                args: dict[str, Any] = {"start": start, "end": end, "interval": interval}
                actual = await plan.stats(tenant, query, top=top, **args)
                expected = data.stats(tenant, query, top=top, **args)
                assert expected.total > 0
                assert same_stats(actual, expected), (tenant, query, args, top, actual)


EXPORT_CASES = ("everything", "word", "phrase", "word and field", "ids", "negated word",
                "metadata value")  # fmt: skip


def line_key(fmt: str, line: str) -> Key:
    if fmt == "csv":
        row = next(csv.reader(io.StringIO(line)))
        return row[1], uuid.UUID(row[0])
    document = orjson.loads(line)
    return document["tenant_id"], uuid.UUID(document["id"])


# ---------------------------------------------------------------------------------------
# The contract


def test_every_case_matches_events_of_both_tenants() -> None:
    # What makes the tests below able to see a leak: for each case both tenants have
    # matching events (a lost tenant condition adds the other's), and their answers differ.
    data = build()
    for name, query in cases(data).items():
        acme, globex = data.expected(ACME, query), data.expected(GLOBEX, query)
        assert acme, name
        assert globex, name
        assert {i for _, i in acme} != {i for _, i in globex}, name
    shared = {shared_id(k) for k in range(SHARED)}
    for tenant in TENANTS:
        assert shared <= {e.id for e in data.events[tenant]}
    # Each tenant's top user is light in the quiet hour, with another count in the other.
    quiet = data.base + timedelta(hours=QUIET_HOUR)

    def in_quiet_hour(tenant: TenantId, user: str) -> int:
        return sum(quiet <= e.timestamp < quiet + timedelta(hours=1) and e.user_id == user
                   for e in data.events[tenant])  # fmt: skip

    for tenant, other in ((ACME, GLOBEX), (GLOBEX, ACME)):
        end = data.base + timedelta(hours=5)
        stats = data.stats(tenant, SearchQuery(), start=data.base, end=end, interval="hour", top=1)
        top = stats.top_users[0].key
        assert top is not None
        assert 1 <= in_quiet_hour(tenant, top) <= 3
        assert in_quiet_hour(other, top) not in (0, in_quiet_hour(tenant, top))


async def test_search_pages_hold_exactly_the_tenants_own_matches(
    backend: BackendUnderTest, data: Overlap
) -> None:
    for shift, plan in enumerate(backend.plans.values()):
        await check_pages(plan, data, list(cases(data)), shift)


async def test_paging_keeps_to_its_first_page_while_both_tenants_write(
    backend: BackendUnderTest, data: Overlap
) -> None:
    # Events stored after the first page, in either tenant and dated among the pages not
    # read yet, are not part of the session; a new search sees the tenant's own.
    now = datetime.now(UTC)
    written: dict[TenantId, list[Event]] = {t: [] for t in TENANTS}

    async def write_to_both() -> None:
        for tenant in TENANTS:
            new = later_events(data, tenant, 2, now=now)
            await backend.store(new)
            written[tenant] += new

    for shift, plan in enumerate(backend.plans.values()):
        for i, name in enumerate(("everything", "word", "word and field", "action", "or")):
            query, order = cases(data)[name], rotate(i + shift)
            for tenant in TENANTS:
                before = Overlap(data.base, {t: data.events[t] + written[t] for t in TENANTS})
                expected = before.expected(tenant, query, order)
                found, _ = await page_through(
                    plan, tenant, query, order, page_size(expected), between_pages=write_to_both
                )
                assert found == expected, (name, tenant, order)
    after = Overlap(data.base, {t: data.events[t] + written[t] for t in TENANTS})
    for tenant in TENANTS:
        expected = after.expected(tenant, SearchQuery())
        page = await next(iter(backend.plans.values())).search(
            tenant, SearchQuery(), PageRequest(limit=len(expected) + 1)
        )
        assert keys([s.event for s in page.items]) == expected
        assert len(written[tenant]) > 0


async def test_export_batches_hold_exactly_the_tenants_own_matches(
    backend: BackendUnderTest, data: Overlap
) -> None:
    for shift, plan in enumerate(backend.plans.values()):
        for i, name in enumerate(EXPORT_CASES):
            query, order = cases(data)[name], rotate(i + shift)
            for tenant in TENANTS:
                expected = data.expected(tenant, query, order)
                size = page_size(expected)
                exported = plan.export(tenant, query, order=order, batch_size=size)
                batches = [batch async for batch in exported]
                assert all(0 < len(batch) <= size for batch in batches), name
                found = keys([s.event for batch in batches for s in batch])
                assert found == expected, (name, tenant, order)


async def test_encoded_export_lines_hold_exactly_the_tenants_own_matches(
    backend: BackendUnderTest, data: Overlap
) -> None:
    encoding = {n: p for n, p in backend.plans.items() if isinstance(p, EncodingBackend)}
    if not encoding:
        pytest.skip("this backend does not encode export lines itself")
    formats: tuple[ExportFormat, ...] = ("csv", "json", "ndjson")
    for shift, plan in enumerate(encoding.values()):
        for i, name in enumerate(EXPORT_CASES):  # every format and order, case by case
            query, order, fmt = cases(data)[name], rotate(i + shift), formats[(i + shift) % 3]
            for tenant in TENANTS:
                expected = data.expected(tenant, query, order)
                size = page_size(expected)
                lines = plan.export_lines(tenant, query, fmt=fmt, order=order, batch_size=size)
                batches = [batch async for batch in lines]
                assert all(0 < len(batch) <= size for batch in batches), name
                found = [line_key(fmt, line) for batch in batches for line in batch]
                assert found == expected, (name, fmt, tenant, order)


async def test_counts_are_of_the_tenants_own_matches(
    backend: BackendUnderTest, data: Overlap
) -> None:
    for plan in backend.plans.values():
        for name, query in cases(data).items():
            for tenant in TENANTS:
                expected = len(data.expected(tenant, query))
                assert await plan.count(tenant, query) == expected, (name, tenant)


async def test_facets_count_exactly_the_tenants_own_matches(
    backend: BackendUnderTest, data: Overlap
) -> None:
    """Exact top values per field, on every backend (OpenSearch: terms aggregations);
    with a size of 1, the most frequent value, ties by value, unset values last."""
    every = FacetRequest(FACET_FIELDS, size=1000)
    for plan in backend.plans.values():
        for name, query in cases(data).items():
            for tenant in TENANTS:
                events = [data.event(tenant, key[1]) for key in data.expected(tenant, query)]
                first = await plan.search(tenant, query, PageRequest(limit=1))
                got = await plan.facets(tenant, query, every, watermark=first.watermark)
                assert not got.partial
                for facet in got.facets:
                    assert facet.relation == "eq"
                    counted = Counter(getattr(e, facet.field) for e in events)
                    assert {v.key: v.count for v in facet.values} == counted, (name, tenant)
                    top = await plan.facets(
                        tenant, query, FacetRequest((facet.field,), size=1),
                        watermark=first.watermark,
                    )  # fmt: skip
                    best = sorted(counted.items(), key=lambda kv: (-kv[1], kv[0] is None,
                                                                  kv[0] or ""))[:1]  # fmt: skip
                    assert [(v.key, v.count) for v in top.facets[0].values] == best


async def test_stats_with_filters_count_only_the_tenants_matches(
    backend: BackendUnderTest, data: Overlap
) -> None:
    for plan in backend.stats.values():
        await check_stats(plan, data, time_only=False)


async def test_stats_over_a_time_range_count_only_the_tenants_events(
    backend: BackendUnderTest, data: Overlap
) -> None:
    for plan in backend.stats.values():
        await check_stats(plan, data, time_only=True)


# ---------------------------------------------------------------------------------------
# PostgreSQL: its plans take the routes they are named after, so the contract above
# reaches every one of them.

ROUTE_CASES = ("word", "phrase", "word and field", "word in a time window", "prefix")


@pytest.mark.parametrize("backend", ["postgres-bypass"], indirect=True)
async def test_postgres_plans_take_the_routes_they_are_named_after(
    backend: BackendUnderTest, data: Overlap, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes: list[tuple[str, Any]] = []

    def spy(module: Any, name: str, record: Callable[..., Any]) -> None:
        real = getattr(module, name)

        async def spying(*args: Any, **kwargs: Any) -> Any:
            result = await real(*args, **kwargs)
            routes.append((name, record(args, result)))
            return result

        monkeypatch.setattr(module, name, spying)

    def sync_spy(module: Any, name: str, record: Callable[[Any], Any]) -> None:
        real = getattr(module, name)

        def spying(*args: Any) -> Any:
            result = real(*args)
            routes.append((name, record(result)))
            return result

        monkeypatch.setattr(module, name, spying)

    spy(search_store, "_probe", lambda args, _: args[7])  # the walk's budget
    spy(search_store, "_via_text_index", lambda args, _: search_store.text_only(args[2]))
    spy(search_store, "_plain", lambda args, _: None)
    sync_spy(stats_store, "_end_from_rollup", bool)
    sync_spy(stats_store, "_proven_tops", frozenset)  # the dimensions proven

    seen: dict[str, list[tuple[str, Any]]] = {}
    sources: dict[str, set[tuple[bool, str]]] = {}  # (time range alone?, source)
    for name, plan in backend.plans.items():
        routes.clear()
        await check_pages(plan, data, [*ROUTE_CASES, "field"], 0)
        await check_pages(plan, data, ROUTE_CASES, 1)
        for time_only in (True, False):
            runs = stats_over_time(data) if time_only else stats_with_filters(data)
            for query, start, end, interval in runs:
                for top in (1, 10):
                    stats = await backend.stats[name].stats(
                        ACME, query, start=start, end=end, interval=interval, top=top
                    )
                    sources.setdefault(name, set()).add((time_only, stats.source))
        seen[name] = list(routes)

    def budgets(name: str) -> set[int]:
        return {v for r, v in seen[name] if r == "_probe"}

    def kinds(name: str, route: str) -> set[Any]:
        return {v for r, v in seen[name] if r == route}

    assert ("_plain", None) in seen["default"]  # structured queries
    assert budgets("default") == {2000}  # one walk, never a second
    assert kinds("default", "_via_text_index") == set()
    assert kinds("default", "_end_from_rollup") == {True, False}  # both ways, by the rule
    assert kinds("default", "_proven_tops") == set()  # summed: too few events to prune
    assert len(budgets("walk twice, prune") - {3}) > 0  # second walks
    assert kinds("walk twice, prune", "_end_from_rollup") == set()  # forced
    proofs = kinds("walk twice, prune", "_proven_tops")
    assert any("user" in p for p in proofs)  # a top list proven from heavy hitters
    assert any(len(p) < 2 for p in proofs)  # and one that fell back to the full sum
    assert budgets("text index, sum") == {3}
    assert kinds("text index, sum", "_via_text_index") == {True, False}  # text-only or not
    assert kinds("text index, sum", "_proven_tops") == set()
    for name in POSTGRES_PLANS:  # a time range alone from the rollups, else the events
        assert sources[name] == {(True, "rollup"), (False, "events")}, name
