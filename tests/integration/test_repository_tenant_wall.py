"""The first wall alone: every repository function that takes a tenant keeps to it.

Row-level security (``test_rls.py``) hides a query that forgets its tenant condition.
Here every repository function runs on a connection that bypasses row-level security
(the superuser the test server logs in as, without ``SET ROLE``), against two tenants
whose data overlap (same event ids, key ids, users, words, timestamps): only the explicit
``tenant_id = ...`` condition of each query keeps the other tenant out, and each test
shows that it sees and changes its own tenant's rows and nothing else.

``COVERED`` maps every public repository coroutine that takes a tenant to the test that
proves its wall; ``test_every_repository_function_taking_a_tenant_has_a_wall_test`` fails
when a new one appears without an entry (or an entry outlives its function).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from types import ModuleType
from typing import Any

import orjson
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

import auditline.storage
from auditline.config import DatabaseSettings, IngestSettings
from auditline.domain.events import Event, EventDraft, StoredEvent
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from auditline.ingest.writer import month_of, months_from
from auditline.search import evaluate
from auditline.search.model import (
    FACET_FIELDS,
    Count,
    FacetRequest,
    Facets,
    PageRequest,
    Position,
    SearchQuery,
    Total,
    ranked,
)
from auditline.search.query import Text
from auditline.security.api_keys import generate_key
from auditline.storage import api_keys as keys_store
from auditline.storage import archive as archive_store
from auditline.storage import events as events_store
from auditline.storage import integrity as integrity_store
from auditline.storage import jobs as jobs_store
from auditline.storage import queue as queue_store
from auditline.storage import retention as retention_store
from auditline.storage import rollups as rollups_store
from auditline.storage import search_index as index_store
from auditline.storage import stream as stream_store
from auditline.storage import tenants as tenants_store
from auditline.storage.database import Connection, open_pool, set_tenant, tenant_transaction
from auditline.storage.search import facets as facet_store
from auditline.storage.search import pages as search_store
from auditline.storage.search import stats as stats_store
from auditline.storage.search.backend import PostgresSearch
from auditline.storage.search.pages import SearchTuning
from auditline.tenancy.scope import PLATFORM
from tests.integration import archive_fixtures
from tests.integration.archive_fixtures import OLD_DAY
from tests.integration.conftest import ACME, GLOBEX
from tests.integration.rollup_checks import fold_all
from tests.integration.tenant_overlap import (
    SHARED,
    TENANTS,
    Key,
    Overlap,
    build,
    cases,
    shared_id,
    stats_over_time,
    stats_with_filters,
    store,
)

NOW = datetime.now(UTC)
TUNINGS = {  # every full-text route: one walk, two walks, the text index
    "walk": SearchTuning(),
    "walk twice": SearchTuning(probe_rows=3, probe_max_rows=1_000_000),
    "text index": SearchTuning(probe_rows=3, probe_max_rows=0),
}
SEARCH_CASES = ("everything", "word", "phrase", "word and field", "ids", "field prefix",
                "metadata array", "negated word", "or")  # fmt: skip


@pytest.fixture
async def bypass(database_url: str) -> AsyncIterator[AsyncConnectionPool[Connection]]:
    """Connections as the superuser: row-level security does not apply to them."""
    pool = await open_pool(
        database_url, DatabaseSettings(app_role=None, pool_min_size=1, pool_max_size=2)
    )
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert await cur.fetchone() == {"rolsuper": True}
    yield pool
    await pool.close()


@pytest.fixture
async def data(pool: AsyncConnectionPool[Connection]) -> Overlap:
    """The overlapping data of acme and globex, written through the application role."""
    overlap = build(NOW)
    for tenant in TENANTS:
        await store(pool, overlap.events[tenant])
    return overlap


def key_of(stored: StoredEvent) -> Key:
    return stored.event.tenant_id, stored.event.id


def heads(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT tenant_id, next_seq FROM tenant_log_heads").fetchall()
    return dict(rows)


# ---------------------------------------------------------------------------------------
# Events


async def test_the_same_event_id_in_two_tenants_is_two_events(
    pool: AsyncConnectionPool[Connection],
    bypass: AsyncConnectionPool[Connection],
    database_url: str,
) -> None:
    def drafts(word: str) -> list[EventDraft]:
        return [
            EventDraft(action="READ", id=event_id, message=f"{word} {i}",
                       timestamp=NOW - timedelta(minutes=i))
            for i, event_id in enumerate(ids)
        ]  # fmt: skip

    ids = [uuid.uuid4() for _ in range(45)]
    small, large = slice(0, 5), slice(5, 45)  # column arrays, and the COPY staging table
    # globex already holds 3 other events: the two log heads differ.
    async with tenant_transaction(pool, GLOBEX) as conn:
        await events_store.insert_events(
            conn, GLOBEX, prepare_events(GLOBEX, [EventDraft(action="LOGIN")] * 3,
                                         limits=IngestSettings(), now=NOW),
        )  # fmt: skip
    written = {t: prepare_events(t, drafts(t), limits=IngestSettings(), now=NOW) for t in TENANTS}
    for tenant in (ACME, GLOBEX):
        first = 0 if tenant == ACME else 3
        for part in (small, large):
            async with tenant_transaction(bypass, tenant) as conn:
                result = await events_store.insert_events(conn, tenant, written[tenant][part])
            assert result.duplicates == []
            assert result.inserted == {
                e.id: first + i for i, e in enumerate(written[tenant]) if e in written[tenant][part]
            }
    assert heads(database_url) == {"platform": 0, "acme": 45, "globex": 48}
    for tenant in TENANTS:  # a retry is a duplicate in its own tenant only
        for part in (small, large):
            async with tenant_transaction(bypass, tenant) as conn:
                retry = await events_store.insert_events(conn, tenant, written[tenant][part])
            assert retry.inserted == {}
            assert retry.duplicates == ids[part]
    assert heads(database_url) == {"platform": 0, "acme": 45, "globex": 48}
    with psycopg.connect(database_url) as conn:
        for tenant in TENANTS:
            stored = conn.execute(
                "SELECT id, message FROM events WHERE tenant_id = %s AND message LIKE %s",
                (tenant, f"{tenant} %"),
            ).fetchall()
            assert sorted(stored) == sorted((e.id, e.message) for e in written[tenant])


def read_events(tenant: TenantId, n: int) -> list[Event]:
    """*n* READ events of *tenant*, ready to insert."""
    drafts = [EventDraft(action="READ", message=f"{tenant} {i}") for i in range(n)]
    return prepare_events(tenant, drafts, limits=IngestSettings(), now=NOW)


async def test_insert_events_stores_nothing_under_another_tenant(
    pool: AsyncConnectionPool[Connection],
    bypass: AsyncConnectionPool[Connection],
    database_url: str,
) -> None:
    for tenant, n in ((ACME, 5), (GLOBEX, 3)):
        async with tenant_transaction(pool, tenant) as conn:
            await events_store.insert_events(conn, tenant, read_events(tenant, n))
    misaddressed = read_events(GLOBEX, 2)  # globex's events handed to a write for acme
    for many in (False, True):  # from column arrays, and staged by COPY
        batch = misaddressed * (20 if many else 1)
        with pytest.raises(ValueError, match="another tenant"):
            async with tenant_transaction(bypass, ACME) as conn:
                await events_store.insert_events(conn, ACME, batch)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT tenant_id, count(*) FROM events GROUP BY 1").fetchall()
    # Before the check: globex 5, numbered 5 and 6 in acme's sequence.
    assert dict(rows) == {"acme": 5, "globex": 3}
    assert heads(database_url) == {"platform": 0, "acme": 5, "globex": 3}


async def test_get_event_returns_only_the_tenants_own_event(
    bypass: AsyncConnectionPool[Connection], data: Overlap
) -> None:
    reader = PostgresSearch(bypass)
    for tenant, other in ((ACME, GLOBEX), (GLOBEX, ACME)):
        async with tenant_transaction(bypass, tenant) as conn:
            for k in range(SHARED):  # the same id in both tenants: this tenant's event
                mine, theirs = data.event(tenant, shared_id(k)), data.event(other, shared_id(k))
                got = await events_store.get_event(conn, tenant, mine.id)
                assert got is not None
                assert got.event == mine
                if theirs.user_id not in (None, mine.user_id):  # their user is not ours
                    assert await events_store.get_event(
                        conn, tenant, mine.id, user_id=theirs.user_id
                    ) is None  # fmt: skip
                if mine.user_id is not None:
                    assert await events_store.get_event(conn, tenant, mine.id, user_id=mine.user_id)
            for their_own in data.own_ids(other):  # an id only the other tenant holds
                assert await events_store.get_event(conn, tenant, their_own) is None
        for k in range(0, SHARED, 7):  # and through the reader the API uses
            read = await reader.get(tenant, shared_id(k))
            assert read is not None
            assert read.event == data.event(tenant, shared_id(k))
        assert await reader.get(tenant, data.own_ids(other)[0]) is None


# ---------------------------------------------------------------------------------------
# The Merkle log (tiles and checkpoints)


async def test_each_tenants_merkle_log_is_its_own(
    bypass: AsyncConnectionPool[Connection], data: Overlap, database_url: str
) -> None:
    sizes = heads(database_url)
    mark = {ACME: b"\xaa", GLOBEX: b"\xbb"}
    for tenant in (ACME, GLOBEX):  # both write the same keys, each its own bytes
        async with tenant_transaction(bypass, tenant) as conn:
            assert await integrity_store.try_lock_sealing(conn, tenant)
            await integrity_store.lock_sealing(conn, tenant)  # re-entrant: its own lock
            await integrity_store.write_tiles(conn, tenant, [(0, 0, mark[tenant] * 32)])
            await integrity_store.add_checkpoint(
                conn, tenant, 1, mark[tenant] * 32, f"note {tenant}"
            )
    assert sizes[ACME] < sizes[GLOBEX]  # so acme's received_at past its head can fail
    for tenant, other in ((ACME, GLOBEX), (GLOBEX, ACME)):
        async with tenant_transaction(bypass, tenant) as conn:
            assert await integrity_store.log_size(conn, tenant) == sizes[tenant]
            leaves = await integrity_store.leaves(conn, tenant, 0, sizes[tenant])
            assert [leaf.seq for leaf in leaves] == list(range(sizes[tenant]))
            for leaf in leaves:
                assert leaf.leaf_hash == data.event(tenant, leaf.id).leaf_hash
            for k in range(0, SHARED, 5):  # the same id in both: this tenant's leaf
                leaf = await integrity_store.leaf_of(conn, tenant, shared_id(k))
                assert leaf is not None
                assert leaf.leaf_hash == data.event(tenant, shared_id(k)).leaf_hash
            assert await integrity_store.leaf_of(conn, tenant, data.own_ids(other)[0]) is None
            arrived = await integrity_store.received_at(conn, tenant, 0)
            assert arrived == data.event(tenant, leaves[0].id).received_at
            # Past its own head nothing, though globex's log goes on (sizes asserted below).
            assert await integrity_store.received_at(conn, tenant, sizes[tenant]) is None
            tiles = await integrity_store.read_tiles(conn, tenant, [(0, 0), (0, 1)])
            assert tiles == {(0, 0): mark[tenant] * 32}
            # leaf 0 from this tenant's level-0 tile; leaf 1 is in no tile of its own
            assert await integrity_store.tile_leaves(conn, tenant, 0, 2) == [mark[tenant] * 32]
            latest = await integrity_store.latest_checkpoint(conn, tenant)
            assert latest is not None
            assert latest.note == f"note {tenant}"
            assert await integrity_store.sealed_through(conn, tenant) == 0
            at = await integrity_store.checkpoint_at(conn, tenant, 1)
            assert at == latest
            assert await integrity_store.all_checkpoints(conn, tenant) == [latest]
    # The sealing lock is per tenant: one tenant's sealer never blocks another's.
    async with tenant_transaction(bypass, ACME) as a, tenant_transaction(bypass, GLOBEX) as g:
        assert await integrity_store.try_lock_sealing(a, ACME)
        assert await integrity_store.try_lock_sealing(g, GLOBEX)


# ---------------------------------------------------------------------------------------
# Search and statistics


async def test_read_watermark_is_the_tenants_own_log_head(
    bypass: AsyncConnectionPool[Connection], data: Overlap
) -> None:
    sizes = {t: len(data.events[t]) for t in TENANTS}
    assert sizes[ACME] != sizes[GLOBEX]
    for tenant in TENANTS:
        async with tenant_transaction(bypass, tenant) as conn:
            assert await search_store.read_watermark(conn, tenant) == sizes[tenant]


async def test_search_page_and_export_lines_return_only_the_tenants_rows(
    bypass: AsyncConnectionPool[Connection], data: Overlap
) -> None:
    for route, tuning in TUNINGS.items():
        for name in SEARCH_CASES:
            query = cases(data)[name]
            for tenant in TENANTS:
                expected = data.expected(tenant, query)
                async with tenant_transaction(bypass, tenant) as conn:
                    mark = await search_store.read_watermark(conn, tenant)
                    whole = PageRequest(limit=len(expected) + 1, include_total=True)
                    page = await search_store.search_page(
                        conn, tenant, query, whole, watermark=mark, tuning=tuning
                    )
                    assert [key_of(s) for s in page.items] == expected, (route, name, tenant)
                    assert page.total is not None
                    assert page.total.value == len(expected)
                    # from a position half-way, in both orders
                    middle = data.event(tenant, expected[len(expected) // 2][1])
                    at = Position(middle.timestamp, middle.id)
                    for order in ("desc", "asc"):
                        rest = PageRequest(limit=len(expected), order=order, after=at)
                        page = await search_store.search_page(
                            conn, tenant, query, rest, watermark=mark, tuning=tuning
                        )
                        after = data.expected(tenant, query, order)
                        after = after[after.index((tenant, middle.id)) + 1 :]
                        assert [key_of(s) for s in page.items] == after, (route, name, order)
                    lines, _ = await search_store.export_lines(
                        conn, tenant, query, whole, fmt="ndjson", watermark=mark, tuning=tuning
                    )
                    documents = [orjson.loads(line) for line in lines]
                    assert [(d["tenant_id"], uuid.UUID(d["id"])) for d in documents] == expected


async def test_count_matches_counts_only_the_tenants_rows(
    bypass: AsyncConnectionPool[Connection], data: Overlap
) -> None:
    for name, query in cases(data).items():
        for tenant in TENANTS:
            n = len(data.expected(tenant, query))
            async with tenant_transaction(bypass, tenant) as conn:
                mark = await search_store.read_watermark(conn, tenant)
                exact = await search_store.count_matches(conn, tenant, query, mark, limit=None)
                assert (exact.value, exact.exact) == (n, True), (name, tenant)
                capped = await search_store.count_matches(conn, tenant, query, mark, limit=n)
                assert (capped.value, capped.exact) == (n, True), (name, tenant)
                if n > 1:
                    below = await search_store.count_matches(conn, tenant, query, mark, limit=n - 1)
                    assert (below.value, below.exact) == (n - 1, False), (name, tenant)


def _facet_counts(facets: Facets) -> dict[str, dict[str | None, int]]:
    return {f.field: {v.key: v.count for v in f.values} for f in facets.facets}


def _expected_counts(events: Sequence[Event]) -> dict[str, dict[str | None, int]]:
    return {f: dict(Counter(getattr(e, f) for e in events)) for f in FACET_FIELDS}


async def test_totals_and_facets_count_only_the_tenants_rows(
    bypass: AsyncConnectionPool[Connection], data: Overlap
) -> None:
    everything = FacetRequest(FACET_FIELDS, size=1000)
    exact, sampled = SearchTuning(), SearchTuning(facet_budget_ms=0, facet_sample_rows=2)
    for name, query in cases(data).items():
        for tenant in TENANTS:
            order = data.expected(tenant, query)
            events = [data.event(tenant, key[1]) for key in order]
            async with tenant_transaction(bypass, tenant) as conn:
                mark = await search_store.read_watermark(conn, tenant)
                total = await search_store.search_total(conn, tenant, query, mark, tuning=exact)
                assert total == Total(len(events), "eq"), (name, tenant)
                if search_store.rollups_apply(query):
                    counted = await search_store.rollup_total(conn, tenant, query, mark)
                    assert counted == Total(len(events), "eq"), (name, tenant)
                    rolled = await facet_store.rollup_facets(conn, tenant, query, everything)
                    assert _facet_counts(rolled) == _expected_counts(events), (name, tenant)
                    # the top user proven from the heavy hitters where it can be
                    counts = (
                        await stats_store.value_counts(
                            conn, tenant, query, dims=["user", "action"], top=1, prune=True
                        )
                    ).counts
                    expected = _expected_counts(events)
                    assert {c.key: c.count for c in counts["action"]} == expected["action"]
                    users = [Count(k, n) for k, n in expected["user_id"].items()]
                    assert ranked(counts["user"])[:1] == ranked(users)[:1], (name, tenant)
                assert await search_store.planner_estimate(conn, tenant, query, mark) >= 0
                got = await facet_store.facets(
                    conn, tenant, query, everything, watermark=mark, tuning=exact
                )
                assert _facet_counts(got) == _expected_counts(events), (name, tenant)
                assert not got.partial
                # the sample: the newest two matches (rows_of), lower bounds beyond them
                part = await facet_store.facets(
                    conn, tenant, query, everything, watermark=mark, tuning=sampled
                )
                assert _facet_counts(part) == _expected_counts(events[:2]), (name, tenant)
                assert part.partial == (len(events) > 2)


async def test_stats_count_only_the_tenants_events(
    bypass: AsyncConnectionPool[Connection], data: Overlap
) -> None:
    ways = [(None, None), (True, True), (False, False), (True, False)]  # prune, trailing hour
    runs = [(run, way) for run in stats_over_time(data) for way in ways]
    runs += [(run, (None, None)) for run in stats_with_filters(data)]
    for (query, start, end, interval), (prune, end_from_rollup) in runs:
        for tenant in TENANTS:
            for top in (1, 10):
                args: dict[str, Any] = {"start": start, "end": end, "interval": interval}
                async with tenant_transaction(bypass, tenant) as conn:
                    stats = await stats_store.stats(
                        conn, tenant, query, top=top, prune=prune,
                        end_from_rollup=end_from_rollup, **args,
                    )  # fmt: skip
                expected = data.stats(tenant, query, top=top, **args)
                assert dataclasses.replace(stats, source="events") == expected, (
                    tenant, query, args, prune, end_from_rollup, top,
                )  # fmt: skip


class Counting:
    """A connection that counts the statements sent through it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.statements = 0

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.statements += 1
        return await self.conn.execute(*args, **kwargs)


async def test_the_prune_choice_weighs_only_the_tenants_own_events(
    bypass: AsyncConnectionPool[Connection], data: Overlap, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Top lists are pruned when the range's whole hours hold enough events (60,000 in
    # production). With the threshold at globex's count, acme (fewer) sums its lists: the
    # decision and one statement; globex prunes: the decision, the candidates and, as no
    # list of 10 can be proven here, the full sum.
    start, end = data.base, data.base + timedelta(hours=5)
    sizes = {t: sum(start <= e.timestamp < end for e in data.events[t]) for t in TENANTS}
    assert sizes[ACME] < sizes[GLOBEX]
    monkeypatch.setattr(stats_store, "_PRUNE_FROM_EVENTS", sizes[GLOBEX])
    for tenant, statements in ((ACME, 2), (GLOBEX, 3)):
        args: dict[str, Any] = {"start": start, "end": end, "interval": "hour", "top": 10}
        async with tenant_transaction(bypass, tenant) as conn:
            counting = Counting(conn)
            stats = await stats_store.stats(counting, tenant, SearchQuery(), **args)  # type: ignore[arg-type]
        assert counting.statements == statements, tenant
        expected = data.stats(tenant, SearchQuery(), **args)
        assert dataclasses.replace(stats, source="events") == expected


# ---------------------------------------------------------------------------------------
# API keys


@pytest.fixture
async def api_keys(
    bypass: AsyncConnectionPool[Connection], pool: AsyncConnectionPool[Connection]
) -> dict[TenantId, list[uuid.UUID]]:
    """Keys of both tenants, the first with the same id in both; acme 3, globex 4."""
    same = uuid.uuid4()
    made: dict[TenantId, list[uuid.UUID]] = {}
    for tenant, n in ((ACME, 3), (GLOBEX, 4)):
        made[tenant] = [same, *(uuid.uuid4() for _ in range(n - 1))]
        async with tenant_transaction(bypass, tenant) as conn:
            for key_id in made[tenant]:
                key = await keys_store.insert_api_key(
                    conn, tenant, key_id=key_id, prefix=generate_key()[1],
                    secret_hash=b"\0" * 32, name="billing", scopes=["logs:read"],
                    created_by="admin", expires_at=None,
                )  # fmt: skip
                assert (key.tenant_id, key.id) == (tenant, key_id)
    return made


async def api_key_rows(bypass: AsyncConnectionPool[Connection]) -> dict[tuple[str, uuid.UUID], Any]:
    async with bypass.connection() as conn:
        cur = await conn.execute("SELECT tenant_id, id, revoked_at, last_used_at FROM api_keys")
        return {(r["tenant_id"], r["id"]): (r["revoked_at"], r["last_used_at"])
                for r in await cur.fetchall()}  # fmt: skip


async def test_insert_and_list_api_keys_keep_to_the_tenant(
    bypass: AsyncConnectionPool[Connection], api_keys: dict[TenantId, list[uuid.UUID]]
) -> None:
    assert set(await api_key_rows(bypass)) == {(t, k) for t in TENANTS for k in api_keys[t]}
    for tenant in TENANTS:
        async with tenant_transaction(bypass, tenant) as conn:
            listed = await keys_store.list_api_keys(conn, tenant)
        assert sorted((k.tenant_id, k.id) for k in listed) == sorted(
            (tenant, k) for k in api_keys[tenant]
        )


async def test_lock_tenant_keys_counts_and_locks_only_the_tenant(
    bypass: AsyncConnectionPool[Connection],
    api_keys: dict[TenantId, list[uuid.UUID]],
    database_url: str,
) -> None:
    async with tenant_transaction(bypass, GLOBEX) as conn:  # one of globex's keys retired
        await keys_store.revoke_api_key(conn, GLOBEX, api_keys[GLOBEX][1], revoked_by="admin")
    for tenant, active in ((ACME, 3), (GLOBEX, 3)):
        async with tenant_transaction(bypass, tenant) as conn:
            assert await keys_store.lock_tenant_keys(conn, tenant) == active
    async with tenant_transaction(bypass, ACME) as conn:
        assert await keys_store.lock_tenant_keys(conn, ACME) == 3
        with psycopg.connect(database_url, autocommit=True) as other:
            other.execute("SET lock_timeout = '50ms'")
            other.execute("SELECT 1 FROM tenants WHERE id = 'globex' FOR UPDATE")  # free
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("SELECT 1 FROM tenants WHERE id = 'acme' FOR UPDATE")
    async with tenant_transaction(bypass, TenantId("initech")) as conn:
        assert await keys_store.lock_tenant_keys(conn, TenantId("initech")) is None


async def test_revoke_api_key_reaches_only_the_tenants_key(
    bypass: AsyncConnectionPool[Connection], api_keys: dict[TenantId, list[uuid.UUID]]
) -> None:
    same, globex_only = api_keys[ACME][0], api_keys[GLOBEX][1]
    async with tenant_transaction(bypass, ACME) as conn:
        assert await keys_store.revoke_api_key(conn, ACME, globex_only, revoked_by="x") is None
        revoked = await keys_store.revoke_api_key(conn, ACME, same, revoked_by="x")
        assert revoked is not None
        assert (revoked[0].tenant_id, revoked[0].id, revoked[1]) == (ACME, same, True)
        again = await keys_store.revoke_api_key(conn, ACME, same, revoked_by="x")
        assert again is not None
        assert (again[0].tenant_id, again[0].revoked_at, again[1]) == (
            ACME, revoked[0].revoked_at, False,
        )  # fmt: skip
    rows = await api_key_rows(bypass)
    assert [k for k, (revoked_at, _) in rows.items() if revoked_at is not None] == [(ACME, same)]
    async with tenant_transaction(bypass, GLOBEX) as conn:  # globex's key of that id: still live
        theirs = await keys_store.revoke_api_key(conn, GLOBEX, same, revoked_by="y")
    assert theirs is not None
    assert (theirs[0].tenant_id, theirs[0].revoked_by, theirs[1]) == (GLOBEX, "y", True)


async def test_touch_api_key_reaches_only_the_tenants_key(
    bypass: AsyncConnectionPool[Connection], api_keys: dict[TenantId, list[uuid.UUID]]
) -> None:
    same, globex_only = api_keys[ACME][0], api_keys[GLOBEX][1]
    async with tenant_transaction(bypass, ACME) as conn:
        await keys_store.touch_api_key(conn, ACME, same)
        await keys_store.touch_api_key(conn, ACME, globex_only)
    rows = await api_key_rows(bypass)
    assert [k for k, (_, used) in rows.items() if used is not None] == [(ACME, same)]


# ---------------------------------------------------------------------------------------
# Tenants


@pytest.mark.usefixtures("pool")  # acme and globex
async def test_get_and_update_tenant_reach_only_that_tenant(
    bypass: AsyncConnectionPool[Connection],
) -> None:
    async with bypass.connection() as conn:
        globex_before = await tenants_store.get_tenant(conn, GLOBEX)
        acme = await tenants_store.get_tenant(conn, ACME)
        assert acme is not None
        assert (acme.id, acme.name) == (ACME, "acme")
    async with tenant_transaction(bypass, ACME) as conn:
        changed = await tenants_store.update_tenant(
            conn, ACME, {"name": "Acme Corp", "retention_days": 30}
        )
    assert changed is not None
    before, after = changed
    assert (before.id, before.name, after.id, after.name, after.retention_days) == (
        ACME, "acme", ACME, "Acme Corp", 30,
    )  # fmt: skip
    async with bypass.connection() as conn:
        assert await tenants_store.get_tenant(conn, GLOBEX) == globex_before
        assert await tenants_store.get_tenant(conn, ACME) == after
        assert await tenants_store.get_tenant(conn, "initech") is None


@pytest.mark.usefixtures("pool")  # acme and globex
async def test_list_tenants_lists_only_the_tenants_asked_for(
    bypass: AsyncConnectionPool[Connection],
) -> None:
    async with bypass.connection() as conn:
        assert [t.id for t in await tenants_store.list_tenants(conn, {ACME})] == [ACME]
        assert [t.id for t in await tenants_store.list_tenants(conn, {GLOBEX})] == [GLOBEX]
        assert [t.id for t in await tenants_store.list_tenants(conn, set())] == []
        # Every client tenant, never the platform's own log.
        assert [t.id for t in await tenants_store.list_tenants(conn)] == [ACME, GLOBEX]


async def test_the_postgres_backend_reads_only_the_tenants_rows(
    bypass: AsyncConnectionPool[Connection], data: Overlap
) -> None:
    backend = PostgresSearch(bypass)
    window = {"start": data.base - timedelta(days=1), "end": NOW + timedelta(hours=1)}
    for tenant, other in ((ACME, GLOBEX), (GLOBEX, ACME)):
        mine = {e.id for e in data.events[tenant]}
        page = await backend.search(tenant, SearchQuery(), PageRequest(limit=1000))
        assert {key_of(s) for s in page.items} == {(tenant, i) for i in mine}
        assert await backend.count(tenant, SearchQuery()) == len(mine)
        stats = await backend.stats(
            tenant, SearchQuery(), interval="day", top=3, **window
        )  # fmt: skip
        assert stats.total == len(mine)
        request = FacetRequest(("user_id",), size=1000)
        facets = await backend.facets(tenant, SearchQuery(), request, watermark=page.watermark)
        assert sum(v.count for v in facets.facets[0].values) == len(mine)
        # highlights read no table: they mark the events passed in, of this tenant only
        marked = await backend.highlight(tenant, SearchQuery(q=Text("invoice")), page.items)
        assert len(marked) == len(page.items)
        read = await backend.get(tenant, data.own_ids(other)[0])
        assert read is None
        assert await backend.get(tenant, data.own_ids(tenant)[0]) is not None


@pytest.mark.usefixtures("pool")  # acme and globex, each with its own key
async def test_masking_source_reads_only_the_tenants_settings_and_key(
    bypass: AsyncConnectionPool[Connection], database_url: str
) -> None:
    masking = {"masking": {"email": "pseudonymise"}}
    async with tenant_transaction(bypass, GLOBEX) as conn:
        await tenants_store.update_tenant(conn, GLOBEX, {"settings": masking})
    with psycopg.connect(database_url) as conn:
        keys = dict(conn.execute("SELECT tenant_id, pseudonym_key FROM tenant_secrets").fetchall())
    async with bypass.connection() as conn:
        acme = await tenants_store.masking_source(conn, ACME)
        globex = await tenants_store.masking_source(conn, GLOBEX)
        missing = await tenants_store.masking_source(conn, TenantId("initech"))
        await conn.rollback()
    assert acme is not None
    assert globex is not None
    assert (acme.settings, acme.pseudonym_key) == ({}, bytes(keys[ACME]))
    assert (globex.settings, globex.pseudonym_key) == (masking, bytes(keys[GLOBEX]))
    assert acme.pseudonym_key != globex.pseudonym_key
    assert missing is None


async def test_create_tenant_opens_only_the_new_tenants_log(
    bypass: AsyncConnectionPool[Connection], data: Overlap, database_url: str
) -> None:
    before = heads(database_url)
    initech = TenantId("initech")
    async with bypass.connection() as conn:
        created = await tenants_store.create_tenant(
            conn, initech, name="Initech", retention_days=90, archive_after_days=None, settings={}
        )
        await conn.commit()
        assert created.id == initech
        acme = await tenants_store.get_tenant(conn, ACME)
        with pytest.raises(tenants_store.TenantExists):
            await tenants_store.create_tenant(
                conn, ACME, name="Taken", retention_days=1, archive_after_days=None, settings={}
            )
        await conn.rollback()
        assert await tenants_store.get_tenant(conn, ACME) == acme
        await conn.rollback()
    assert heads(database_url) == {**before, "initech": 0}
    assert before[ACME] == len(data.events[ACME])


async def test_set_tenant_lasts_for_its_transaction_only(
    bypass: AsyncConnectionPool[Connection],
) -> None:
    async with bypass.connection() as conn:
        for tenant in TENANTS:
            async with conn.transaction():
                await set_tenant(conn, tenant)
                cur = await conn.execute("SELECT auditline_current_tenant() AS t")
                assert await cur.fetchone() == {"t": tenant}
            cur = await conn.execute("SELECT auditline_current_tenant() AS t")
            assert await cur.fetchone() == {"t": None}  # the next request's tenant is unset
            await conn.rollback()


# ---------------------------------------------------------------------------------------
# Archival


@pytest.fixture
async def archived_day(pool: AsyncConnectionPool[Connection]) -> date:
    """OLD_DAY with the same 30 events (ids, timestamps) in acme and globex, and globex
    holding 20 more, earlier, with higher seqs."""
    await archive_fixtures.write(pool, ACME, archive_fixtures.drafts(OLD_DAY, 30))
    await archive_fixtures.write(pool, GLOBEX, archive_fixtures.drafts(OLD_DAY, 30))
    earlier = [dataclasses.replace(d, timestamp=datetime.combine(OLD_DAY, time(), UTC))
               for d in archive_fixtures.drafts(OLD_DAY, 20, seed=11)]  # fmt: skip
    await archive_fixtures.write(pool, GLOBEX, earlier)
    return OLD_DAY


async def test_archive_reads_see_only_the_tenants_events(
    bypass: AsyncConnectionPool[Connection], archived_day: date
) -> None:
    start = datetime.combine(archived_day, time(), UTC)
    end = start + timedelta(days=1)
    async with bypass.connection() as conn, conn.transaction():
        first = await archive_store.first_event_at(conn, ACME, start, end)
        rows = [r async for batch in archive_store.read_events(
            conn, ACME, start, end, batch_rows=7) for r in batch]  # fmt: skip
        holes = await archive_store.count_unarchived(conn, ACME, start, end, [[0, 9], [20, 29]])
        whole = await archive_store.count_unarchived(conn, ACME, start, end, [[0, 29]])
        globex = await archive_store.count_unarchived(conn, GLOBEX, start, end, [[0, 29], [49, 49]])
    assert first is not None
    assert first > start  # globex's first event is at midnight, acme's later
    assert {r[0] for r in rows} == {ACME}
    assert [r[2] for r in rows] == list(range(30))
    assert (holes, whole, globex) == (10, 0, 19)


async def test_restore_events_puts_back_only_the_tenants_rows(
    bypass: AsyncConnectionPool[Connection], archived_day: date, database_url: str
) -> None:
    start = datetime.combine(archived_day, time(), UTC)
    end = start + timedelta(days=1)
    async with tenant_transaction(bypass, ACME) as conn:
        rows = [r async for b in archive_store.read_events(conn, ACME, start, end, batch_rows=50)
                for r in b]  # fmt: skip
    globex = archive_fixtures.snapshot(database_url, GLOBEX)
    acme = archive_fixtures.snapshot(database_url, ACME)
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM event_ids WHERE tenant_id = 'acme'")
        conn.execute("DELETE FROM events WHERE tenant_id = 'acme'")
    async with tenant_transaction(bypass, ACME) as conn:
        with pytest.raises(ValueError, match="another tenant"):
            await archive_store.restore_events(
                conn, ACME, [(GLOBEX, *rows[0][1:])]
            )  # fmt: skip
    async with tenant_transaction(bypass, ACME) as conn:
        inserted = await archive_store.restore_events(conn, ACME, rows)
    async with tenant_transaction(bypass, ACME) as conn:
        again = await archive_store.restore_events(conn, ACME, rows)
    assert (inserted, again) == (30, 0)  # globex holds the same ids: not a reason to skip
    assert archive_fixtures.snapshot(database_url, ACME) == acme
    assert archive_fixtures.snapshot(database_url, GLOBEX) == globex


@pytest.mark.usefixtures("pool")  # acme and globex
async def test_unlist_removed_changes_only_the_tenants_ranges(
    bypass: AsyncConnectionPool[Connection], database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        for tenant in TENANTS:
            conn.execute(
                "INSERT INTO removed_ranges (tenant_id, first_seq, last_seq, events, reason, "
                "actor) VALUES (%s, 0, 19, 20, 'archive', 'x'), (%s, 30, 39, 10, 'retention', "
                "'y')", (tenant, tenant),
            )  # fmt: skip
    async with tenant_transaction(bypass, ACME) as conn:
        changed = await archive_store.unlist_removed(conn, ACME, [[5, 9], [30, 39]])
    assert changed == 2
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT tenant_id, first_seq, last_seq, events, reason, actor FROM removed_ranges "
            "ORDER BY tenant_id, first_seq"
        ).fetchall()
    assert rows == [
        (ACME, 0, 4, 5, "archive", "x"), (ACME, 10, 19, 10, "archive", "x"),
        (GLOBEX, 0, 19, 20, "archive", "x"), (GLOBEX, 30, 39, 10, "retention", "y"),
    ]  # fmt: skip


@pytest.mark.usefixtures("pool")  # acme and globex
async def test_archive_records_are_saved_and_listed_per_tenant(
    bypass: AsyncConnectionPool[Connection],
) -> None:
    for tenant in TENANTS:
        async with tenant_transaction(bypass, tenant) as conn:
            await archive_store.save_archive(conn, tenant, OLD_DAY, {"of": tenant}, f"/{tenant}")
    async with tenant_transaction(bypass, ACME) as conn:
        saved = await archive_store.save_archive(conn, ACME, OLD_DAY, {"of": "again"}, "/again")
    async with bypass.connection() as conn:
        acme = await archive_store.list_archives(conn, ACME)
        globex = await archive_store.list_archives(conn, GLOBEX, OLD_DAY, OLD_DAY)
        none = await archive_store.list_archives(conn, GLOBEX, OLD_DAY + timedelta(days=1))
    assert acme == [saved]
    assert (saved.manifest, saved.location) == ({"of": "again"}, "/again")
    assert [(r.tenant_id, r.manifest, r.location) for r in globex] == [
        (GLOBEX, {"of": GLOBEX}, f"/{GLOBEX}")
    ]
    assert none == []


# Removing events (retention, cleanup, archival)


_ROW_KEYS = {  # what identifies (and, for rollups, counts) a row of each table
    "events": "tenant_id, id, seq, timestamp",
    "event_ids": "tenant_id, id, seq, timestamp",
    "event_rollups": "tenant_id, dim, bucket, k1, k2, n",
    "event_rollup_heavy": "tenant_id, dim, bucket, k1, k2, n",
    "event_rollup_deltas": "tenant_id, dim, bucket, k1, k2, n",
}


def rows_of(database_url: str, table: str) -> set[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        query = f"SELECT {_ROW_KEYS[table]} FROM {table}"  # noqa: S608 - constants
        return set(conn.execute(query).fetchall())


def seq_runs(seqs: Iterator[int] | list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for s in sorted(seqs):
        if runs and s == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
    return runs


async def test_count_and_delete_batch_reach_only_the_tenants_events(
    bypass: AsyncConnectionPool[Connection], data: Overlap, database_url: str
) -> None:
    later = max(e.timestamp for t in TENANTS for e in data.events[t]) + timedelta(seconds=1)
    cut = data.base + timedelta(hours=1)  # the early events and some shared ones are older
    older = {t: sorted((e.timestamp, e.id) for e in data.events[t] if e.timestamp < cut)
             for t in TENANTS}  # fmt: skip
    assert 5 < len(older[ACME]) < len(data.events[ACME])
    for tenant in TENANTS:
        async with tenant_transaction(bypass, tenant) as conn:
            assert await retention_store.count_events(conn, tenant, later) == len(
                data.events[tenant]
            )
            assert await retention_store.count_events(conn, tenant, cut) == len(older[tenant])
            assert await retention_store.count_events(conn, tenant, later, through_seq=4) == 5
    globex = {t: {r for r in rows_of(database_url, t) if r[0] == GLOBEX}
              for t in ("events", "event_ids")}  # fmt: skip
    async with tenant_transaction(bypass, ACME) as conn:
        removed = await retention_store.delete_batch(conn, ACME, cut, 5)
    assert removed.events == 5
    first_five = {i for _, i in older[ACME][:5]}  # the oldest, by (timestamp, id)
    acme_ids = {r[1] for r in rows_of(database_url, "event_ids") if r[0] == ACME}
    assert not acme_ids & first_five
    assert len(acme_ids) == len(data.events[ACME]) - 5
    seq_of = {e.id: k for k, e in enumerate(data.events[ACME])}  # stored in this order
    assert removed.ranges == seq_runs([seq_of[i] for i in first_five])
    assert {t: {r for r in rows_of(database_url, t) if r[0] == GLOBEX}
            for t in ("events", "event_ids")} == globex  # fmt: skip
    async with tenant_transaction(bypass, ACME) as conn:  # a seq bound keeps later numbers
        bounded = await retention_store.delete_batch(conn, ACME, later, 10_000, through_seq=30)
    assert expand_runs(bounded.ranges) == set(range(31)) - {seq_of[i] for i in first_five}
    async with tenant_transaction(bypass, ACME) as conn:
        assert await retention_store.delete_batch(conn, ACME, cut, 5, through_seq=30) == (
            retention_store.NOTHING
        )


def expand_runs(runs: list[tuple[int, int]]) -> set[int]:
    return {s for a, b in runs for s in range(a, b + 1)}


@pytest.mark.usefixtures("pool")  # acme and globex
async def test_lock_tenant_locks_only_the_tenants_row_and_removals(
    bypass: AsyncConnectionPool[Connection], database_url: str
) -> None:
    removal_lock = "SELECT pg_try_advisory_xact_lock(1380800076, hashtext(%s))"
    async with tenant_transaction(bypass, ACME) as conn:
        assert await retention_store.lock_tenant(conn, ACME) is False
        with psycopg.connect(database_url, autocommit=True) as other:
            other.execute("SET lock_timeout = '50ms'")
            other.execute("SELECT 1 FROM tenants WHERE id = 'globex' FOR UPDATE")  # free
            assert other.execute(removal_lock, ("globex",)).fetchone() == (True,)
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("SELECT 1 FROM tenants WHERE id = 'acme' FOR UPDATE")
            assert other.execute(removal_lock, ("acme",)).fetchone() == (False,)
            # the log head stays free: the tenant's writes go on
            other.execute("SELECT 1 FROM tenant_log_heads WHERE tenant_id = 'acme' FOR UPDATE")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE tenants SET legal_hold = true WHERE id = 'globex'")
    async with tenant_transaction(bypass, GLOBEX) as conn:
        assert await retention_store.lock_tenant(conn, GLOBEX) is True
    async with tenant_transaction(bypass, ACME) as conn:
        assert await retention_store.lock_tenant(conn, ACME) is False
        assert await retention_store.lock_tenant(conn, TenantId("initech")) is None


async def test_removed_ranges_are_recorded_read_and_finished_per_tenant(
    bypass: AsyncConnectionPool[Connection], data: Overlap, database_url: str
) -> None:
    for tenant, ranges in ((ACME, [(0, 2), (5, 9)]), (GLOBEX, [(0, 2), (20, 24)])):
        async with tenant_transaction(bypass, tenant) as conn:
            await retention_store.record_ranges(
                conn, tenant, ranges, reason="retention", actor="t", job_id=None,
                ids_removed=False,
            )  # fmt: skip
    for tenant, ranges in ((ACME, [(0, 2), (5, 9)]), (GLOBEX, [(0, 2), (20, 24)])):
        async with tenant_transaction(bypass, tenant) as conn:
            assert await retention_store.removed_ranges(conn, tenant) == ranges
            assert await retention_store.pending_id_ranges(conn, tenant) == ranges
    before = rows_of(database_url, "event_ids")
    async with tenant_transaction(bypass, ACME) as conn:
        assert await retention_store.delete_ids_batch(conn, ACME, 5, 9, 3) == 3
        assert await retention_store.pending_id_ranges(conn, ACME) == [(0, 2), (5, 9)]
        assert await retention_store.delete_ids_batch(conn, ACME, 5, 9, 3) == 2
        assert await retention_store.pending_id_ranges(conn, ACME) == [(0, 2)]
    gone = before - rows_of(database_url, "event_ids")
    assert {(r[0], r[2]) for r in gone} == {(ACME, s) for s in range(5, 10)}
    async with tenant_transaction(bypass, GLOBEX) as conn:  # globex's ranges untouched
        assert await retention_store.pending_id_ranges(conn, GLOBEX) == [(0, 2), (20, 24)]


async def test_partition_removal_and_rollups_are_the_tenants_own(
    bypass: AsyncConnectionPool[Connection], data: Overlap, database_url: str
) -> None:
    month = month_of(data.base)
    end = months_from(month, 2)[1]
    for tenant in TENANTS:
        in_month = [k for k, e in enumerate(data.events[tenant]) if month <= e.timestamp < end]
        async with tenant_transaction(bypass, tenant) as conn:
            removed = await retention_store.partition_tenant_removal(conn, tenant, month, end)
        assert removed.ranges == seq_runs(in_month)
        assert removed.events == len(in_month)
    with psycopg.connect(database_url) as conn:  # folded rows, and deltas not yet folded
        fold_all(conn)
        conn.execute(
            """INSERT INTO event_rollup_deltas
               SELECT tenant_id, dim, bucket, k1, k2, 1 FROM event_rollups WHERE dim = 'total'"""
        )
    rollups = {t: rows_of(database_url, t) for t in _ROLLUP_TABLES}
    for table, rows in rollups.items():
        assert {r[0] for r in rows} == set(TENANTS), table
    async with tenant_transaction(bypass, ACME) as conn:
        await retention_store.forget_rollups(conn, ACME, month, end)
    for table, rows in rollups.items():
        left = rows_of(database_url, table)
        assert left == {r for r in rows if r[0] != ACME or not month <= r[2] < end}, table


_ROLLUP_TABLES = ("event_rollups", "event_rollup_heavy", "event_rollup_deltas")


async def test_a_fold_moves_only_the_tenants_own_deltas(
    bypass: AsyncConnectionPool[Connection], data: Overlap, database_url: str
) -> None:
    before = {t: rows_of(database_url, t) for t in _ROLLUP_TABLES}
    assert {r[0] for r in before["event_rollup_deltas"]} == set(TENANTS)
    async with bypass.connection() as conn:
        assert await rollups_store.pending_tenants(conn) == sorted(TENANTS)
    async with tenant_transaction(bypass, ACME) as conn:
        assert await rollups_store.fold(conn, ACME)
    after = {t: rows_of(database_url, t) for t in _ROLLUP_TABLES}
    assert {r[0] for r in after["event_rollup_deltas"]} == {GLOBEX}
    assert after["event_rollup_deltas"] == {r for r in before["event_rollup_deltas"]
                                           if r[0] == GLOBEX}  # fmt: skip
    assert {r[0] for r in after["event_rollups"]} == {ACME}
    async with bypass.connection() as conn:
        assert await rollups_store.pending_tenants(conn) == [GLOBEX]


# ---------------------------------------------------------------------------------------
# Jobs


def job_rows(database_url: str) -> dict[uuid.UUID, tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        found = conn.execute(
            "SELECT id, tenant_id, status, attempts, progress, error, lease_until FROM jobs"
        ).fetchall()
    return {row[0]: row[1:] for row in found}


@pytest.fixture
async def jobs(
    bypass: AsyncConnectionPool[Connection], pool: AsyncConnectionPool[Connection]
) -> dict[TenantId, list[uuid.UUID]]:
    """Two jobs each for acme, globex and the platform (tenant_id NULL), same kinds."""
    made: dict[TenantId, list[uuid.UUID]] = {}
    for tenant in (ACME, GLOBEX, PLATFORM):
        made[tenant] = [uuid.uuid4(), uuid.uuid4()]
        async with tenant_transaction(bypass, tenant) as conn:
            for job_id in made[tenant]:
                await jobs_store.insert_job(conn, tenant, job_id, "shared.kind", {"t": tenant})
    return made


async def test_insert_get_and_list_jobs_keep_to_the_tenant(
    bypass: AsyncConnectionPool[Connection],
    jobs: dict[TenantId, list[uuid.UUID]],
    database_url: str,
) -> None:
    stored = job_rows(database_url)
    assert {k: v[0] for k, v in stored.items()} == {
        j: (None if t == PLATFORM else t) for t, ids in jobs.items() for j in ids
    }
    for tenant, ids in jobs.items():
        others = [j for t, js in jobs.items() if t != tenant for j in js]
        async with tenant_transaction(bypass, tenant) as conn:
            for job_id in ids:
                got = await jobs_store.get_job(conn, tenant, job_id)
                assert got is not None
                assert got.id == job_id
            for job_id in others:
                assert await jobs_store.get_job(conn, tenant, job_id) is None
            listed = await jobs_store.list_jobs(
                conn, tenant, kind="shared.kind", status=None, after=None, limit=10
            )
            assert sorted(j.id for j in listed) == sorted(ids)
            first = listed[0]
            rest = await jobs_store.list_jobs(
                conn, tenant, kind=None, status="queued", after=(first.created_at, first.id),
                limit=10,
            )  # fmt: skip
            assert [j.id for j in rest] == [listed[1].id]


async def test_prune_finished_deletes_only_the_tenants_jobs(
    bypass: AsyncConnectionPool[Connection],
    jobs: dict[TenantId, list[uuid.UUID]],
    database_url: str,
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:  # all finished long ago
        conn.execute(
            "UPDATE jobs SET status = 'succeeded', finished_at = now() - interval '9 days'"
        )
    cutoff = datetime.now(UTC)
    for tenant in (ACME, PLATFORM):
        async with tenant_transaction(bypass, tenant) as conn:
            pruned = await jobs_store.prune_finished(conn, tenant, finished_before=cutoff, limit=10)
        assert pruned == 2
    assert sorted(job_rows(database_url)) == sorted(jobs[GLOBEX])


async def test_start_finish_progress_and_lease_reach_only_the_tenants_job(
    bypass: AsyncConnectionPool[Connection],
    jobs: dict[TenantId, list[uuid.UUID]],
    database_url: str,
) -> None:
    before = job_rows(database_url)
    for tenant in (ACME, GLOBEX, PLATFORM):
        foreign = [j for t, js in jobs.items() if t != tenant for j in js]
        async with tenant_transaction(bypass, tenant) as conn:
            for job_id in foreign:  # another tenant's job: as absent, and untouched
                assert await jobs_store.start_job(conn, tenant, job_id, lease_seconds=60) is None
                await jobs_store.extend_lease(conn, tenant, job_id, 60)
                await jobs_store.set_progress(conn, tenant, job_id, 0.5)
                assert not await jobs_store.finish_job(
                    conn, tenant, job_id, status="failed", error="x"
                )
    assert job_rows(database_url) == before
    mine = jobs[ACME][0]
    async with tenant_transaction(bypass, ACME) as conn:
        assert await jobs_store.start_job(conn, ACME, mine, lease_seconds=60) == "started"
        assert await jobs_store.start_job(conn, ACME, mine, lease_seconds=60) == "leased"
        await jobs_store.set_progress(conn, ACME, mine, {"n": 1})
        assert await jobs_store.finish_job(conn, ACME, mine, status="succeeded", result={})
    after = job_rows(database_url)
    assert after[mine][1:4] == ("succeeded", 1, {"n": 1})
    assert {k: v for k, v in after.items() if k != mine} == {
        k: v for k, v in before.items() if k != mine
    }


async def test_a_queued_message_carries_its_tenant_to_the_receiver(
    bypass: AsyncConnectionPool[Connection],
) -> None:
    sent = {uuid.uuid4(): t for t in ("acme", "globex", None)}
    async with bypass.connection() as conn, conn.transaction():
        for job_id, tenant in sent.items():
            await queue_store.send(conn, job_id=job_id, kind="k", tenant_id=tenant, payload={})
        got, dead = await queue_store.receive(conn, limit=10, visibility_seconds=60, max_receives=5)
    assert dead == []
    assert {m.job_id: m.job_tenant for m in got} == sent


# ---------------------------------------------------------------------------------------
# Every repository function that takes a tenant has a test above


async def test_stream_reads_by_seq_keep_to_the_tenant_and_agree_with_the_compiler(
    bypass: AsyncConnectionPool[Connection], data: Overlap, database_url: str
) -> None:
    """Both tenants number their events from 0, so every seq range exists in both: only the
    tenant condition keeps the other's rows out. And for every search case, the live path
    (new rows, each term decided by PostgreSQL, the rest by ``search.evaluate``) selects
    exactly the events the replay path (the search compiler's SQL) selects, which are the
    ones the reference expects."""
    sizes = heads(database_url)
    for tenant in TENANTS:
        async with tenant_transaction(bypass, tenant) as conn:
            assert await stream_store.last_seq(conn, tenant) == sizes[tenant] - 1
            for name, query in cases(data).items():
                terms = sorted(evaluate.text_terms(query), key=repr)
                rows = await stream_store.events_after(
                    conn, tenant, -1, sizes[tenant], terms, limit=10_000
                )
                assert [r.event.seq for r in rows] == list(range(sizes[tenant]))
                assert {r.event.event.tenant_id for r in rows} == {tenant}
                live = [
                    key_of(r.event)
                    for r in rows
                    if evaluate.matches(r.event.event, query, _hits(terms, r.hits))
                ]
                replayed = await stream_store.replay(
                    conn, tenant, query, -1, sizes[tenant], limit=10_000
                )
                assert live == [key_of(e) for e in replayed], name
                assert sorted(live) == sorted(data.expected(tenant, query)), name
                assert live, name
            # a range: exactly its rows, in seq order
            window = await stream_store.replay(conn, tenant, SearchQuery(), 9, 19, limit=5)
            assert [e.seq for e in window] == [10, 11, 12, 13, 14]


def _hits(terms: list[Text], hits: tuple[bool, ...]) -> Callable[[Text], bool]:
    return dict(zip(terms, hits, strict=True)).__getitem__


async def test_search_index_progress_and_pending_removals_are_per_tenant(
    pool: AsyncConnectionPool[Connection], bypass: AsyncConnectionPool[Connection]
) -> None:
    removed = {ACME: [(0, 1), (3, 3)], GLOBEX: [(0, 1), (7, 8)]}
    for tenant, upto in ((ACME, 5), (GLOBEX, 9)):
        async with tenant_transaction(bypass, tenant) as conn:
            assert await index_store.lock_progress(conn, tenant) == 0
            await index_store.advance(conn, tenant, upto)
            await retention_store.record_ranges(
                conn, tenant, removed[tenant], reason="retention", actor="t", job_id=None
            )
    async with tenant_transaction(bypass, ACME) as conn:
        next_seq, indexed_at = await index_store.progress(conn, ACME)
        assert (next_seq, indexed_at is not None) == (5, True)
        assert await index_store.pending_removals(conn, ACME, limit=10) == removed[ACME]
        await index_store.mark_propagated(conn, ACME, [0, 3])
        assert await index_store.pending_removals(conn, ACME, limit=10) == []
        # The waiting lock reads (and creates) the tenant's own row only.
        assert await index_store.wait_progress(conn, ACME) == 5
    async with tenant_transaction(bypass, GLOBEX) as conn:  # globex's untouched
        assert (await index_store.progress(conn, GLOBEX))[0] == 9
        assert await index_store.pending_removals(conn, GLOBEX, limit=10) == removed[GLOBEX]
        assert await index_store.pending_removals(conn, GLOBEX, limit=1) == [(0, 1)]
    # The lock is the tenant's own: held for acme, globex's is still free.
    async with tenant_transaction(bypass, ACME) as held:
        assert await index_store.lock_progress(held, ACME) == 5
        async with tenant_transaction(bypass, GLOBEX) as conn:
            assert await index_store.lock_progress(conn, GLOBEX) == 9
        async with tenant_transaction(bypass, ACME) as conn:
            assert await index_store.lock_progress(conn, ACME) is None


async def test_search_index_lag_counts_only_the_tenants_events(
    pool: AsyncConnectionPool[Connection], bypass: AsyncConnectionPool[Connection]
) -> None:
    for tenant, n in ((ACME, 5), (GLOBEX, 3)):
        async with tenant_transaction(pool, tenant) as conn:
            await events_store.insert_events(conn, tenant, read_events(tenant, n))
    async with tenant_transaction(bypass, ACME) as conn:
        behind, oldest = await index_store.lag(conn, ACME)
        assert (behind, oldest is not None) == (5, True)
        await index_store.lock_progress(conn, ACME)
        await index_store.advance(conn, ACME, 4)
        assert (await index_store.lag(conn, ACME))[0] == 1
        await index_store.advance(conn, ACME, 5)
        assert await index_store.lag(conn, ACME) == (0, None)
    async with tenant_transaction(bypass, GLOBEX) as conn:  # globex's own, untouched
        assert (await index_store.lag(conn, GLOBEX))[0] == 3


COVERED: dict[str, Callable[..., Any]] = {
    "api_keys.insert_api_key": test_insert_and_list_api_keys_keep_to_the_tenant,
    "api_keys.list_api_keys": test_insert_and_list_api_keys_keep_to_the_tenant,
    "api_keys.lock_tenant_keys": test_lock_tenant_keys_counts_and_locks_only_the_tenant,
    "api_keys.revoke_api_key": test_revoke_api_key_reaches_only_the_tenants_key,
    "api_keys.touch_api_key": test_touch_api_key_reaches_only_the_tenants_key,
    "archive.count_unarchived": test_archive_reads_see_only_the_tenants_events,
    "archive.first_event_at": test_archive_reads_see_only_the_tenants_events,
    "archive.list_archives": test_archive_records_are_saved_and_listed_per_tenant,
    "archive.restore_events": test_restore_events_puts_back_only_the_tenants_rows,
    "archive.save_archive": test_archive_records_are_saved_and_listed_per_tenant,
    "archive.unlist_removed": test_unlist_removed_changes_only_the_tenants_ranges,
    "database.set_tenant": test_set_tenant_lasts_for_its_transaction_only,
    "jobs.insert_job": test_insert_get_and_list_jobs_keep_to_the_tenant,
    "jobs.get_job": test_insert_get_and_list_jobs_keep_to_the_tenant,
    "jobs.list_jobs": test_insert_get_and_list_jobs_keep_to_the_tenant,
    "jobs.start_job": test_start_finish_progress_and_lease_reach_only_the_tenants_job,
    "jobs.extend_lease": test_start_finish_progress_and_lease_reach_only_the_tenants_job,
    "jobs.set_progress": test_start_finish_progress_and_lease_reach_only_the_tenants_job,
    "jobs.prune_finished": test_prune_finished_deletes_only_the_tenants_jobs,
    "jobs.finish_job": test_start_finish_progress_and_lease_reach_only_the_tenants_job,
    "queue.send": test_a_queued_message_carries_its_tenant_to_the_receiver,
    "events.get_event": test_get_event_returns_only_the_tenants_own_event,
    "rollups.fold": test_a_fold_moves_only_the_tenants_own_deltas,
    "events.insert_events": test_the_same_event_id_in_two_tenants_is_two_events,
    "events.send_insert": test_the_same_event_id_in_two_tenants_is_two_events,
    "integrity.add_checkpoint": test_each_tenants_merkle_log_is_its_own,
    "integrity.all_checkpoints": test_each_tenants_merkle_log_is_its_own,
    "integrity.checkpoint_at": test_each_tenants_merkle_log_is_its_own,
    "integrity.latest_checkpoint": test_each_tenants_merkle_log_is_its_own,
    "integrity.leaf_of": test_each_tenants_merkle_log_is_its_own,
    "integrity.leaves": test_each_tenants_merkle_log_is_its_own,
    "integrity.lock_sealing": test_each_tenants_merkle_log_is_its_own,
    "integrity.log_size": test_each_tenants_merkle_log_is_its_own,
    "integrity.read_tiles": test_each_tenants_merkle_log_is_its_own,
    "integrity.received_at": test_each_tenants_merkle_log_is_its_own,
    "integrity.sealed_through": test_each_tenants_merkle_log_is_its_own,
    "integrity.tile_leaves": test_each_tenants_merkle_log_is_its_own,
    "integrity.try_lock_sealing": test_each_tenants_merkle_log_is_its_own,
    "integrity.write_tiles": test_each_tenants_merkle_log_is_its_own,
    "search.pages.count_matches": test_count_matches_counts_only_the_tenants_rows,
    "search.pages.search_total": test_totals_and_facets_count_only_the_tenants_rows,
    "search.pages.planner_estimate": test_totals_and_facets_count_only_the_tenants_rows,
    "search.pages.rows_of": test_totals_and_facets_count_only_the_tenants_rows,
    "search.pages.rollup_total": test_totals_and_facets_count_only_the_tenants_rows,
    "search.facets.facets": test_totals_and_facets_count_only_the_tenants_rows,
    "search.facets.rollup_facets": test_totals_and_facets_count_only_the_tenants_rows,
    "search.backend.PostgresSearch.facets": test_the_postgres_backend_reads_only_the_tenants_rows,
    "search.backend.PostgresSearch.highlight": (
        test_the_postgres_backend_reads_only_the_tenants_rows
    ),
    "search.pages.export_lines": test_search_page_and_export_lines_return_only_the_tenants_rows,
    "search.pages.read_watermark": test_read_watermark_is_the_tenants_own_log_head,
    "search.pages.search_page": test_search_page_and_export_lines_return_only_the_tenants_rows,
    "search.stats.stats": test_stats_count_only_the_tenants_events,
    "search.stats.value_counts": test_totals_and_facets_count_only_the_tenants_rows,
    "search.backend.PostgresSearch.count": test_the_postgres_backend_reads_only_the_tenants_rows,
    "search.backend.PostgresSearch.get": test_get_event_returns_only_the_tenants_own_event,
    "search.backend.PostgresSearch.search": test_the_postgres_backend_reads_only_the_tenants_rows,
    "search.backend.PostgresSearch.stats": test_the_postgres_backend_reads_only_the_tenants_rows,
    "stream.events_after": test_stream_reads_by_seq_keep_to_the_tenant_and_agree_with_the_compiler,
    "stream.last_seq": test_stream_reads_by_seq_keep_to_the_tenant_and_agree_with_the_compiler,
    "stream.replay": test_stream_reads_by_seq_keep_to_the_tenant_and_agree_with_the_compiler,
    "retention.count_events": test_count_and_delete_batch_reach_only_the_tenants_events,
    "retention.delete_batch": test_count_and_delete_batch_reach_only_the_tenants_events,
    "retention.delete_ids_batch": test_removed_ranges_are_recorded_read_and_finished_per_tenant,
    "retention.forget_rollups": test_partition_removal_and_rollups_are_the_tenants_own,
    "retention.lock_tenant": test_lock_tenant_locks_only_the_tenants_row_and_removals,
    "retention.partition_tenant_removal": test_partition_removal_and_rollups_are_the_tenants_own,
    "retention.pending_id_ranges": test_removed_ranges_are_recorded_read_and_finished_per_tenant,
    "retention.record_ranges": test_removed_ranges_are_recorded_read_and_finished_per_tenant,
    "retention.removed_ranges": test_removed_ranges_are_recorded_read_and_finished_per_tenant,
    "search_index.advance": test_search_index_progress_and_pending_removals_are_per_tenant,
    "search_index.lag": test_search_index_lag_counts_only_the_tenants_events,
    "search_index.lock_progress": test_search_index_progress_and_pending_removals_are_per_tenant,
    "search_index.mark_propagated": test_search_index_progress_and_pending_removals_are_per_tenant,
    "search_index.pending_removals": test_search_index_progress_and_pending_removals_are_per_tenant,
    "search_index.progress": test_search_index_progress_and_pending_removals_are_per_tenant,
    "search_index.wait_progress": test_search_index_progress_and_pending_removals_are_per_tenant,
    "tenants.create_tenant": test_create_tenant_opens_only_the_new_tenants_log,
    "tenants.list_tenants": test_list_tenants_lists_only_the_tenants_asked_for,
    "tenants.masking_source": test_masking_source_reads_only_the_tenants_settings_and_key,
    "tenants.get_tenant": test_get_and_update_tenant_reach_only_that_tenant,
    "tenants.update_tenant": test_get_and_update_tenant_reach_only_that_tenant,
}


def _modules(package: ModuleType) -> Iterator[ModuleType]:
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
        yield importlib.import_module(info.name)


def _takes_a_tenant(function: Callable[..., Any]) -> bool:
    return any(
        p.name in ("tenant", "tenant_id") or "TenantId" in str(p.annotation)
        for p in inspect.signature(function).parameters.values()
    )


def repository_functions_taking_a_tenant() -> set[str]:
    """``module.function`` (or ``module.Class.method``) for every public coroutine of the
    storage package with a tenant parameter (named so, or annotated ``TenantId``)."""
    found: set[str] = set()
    for module in _modules(auditline.storage):
        short = module.__name__.removeprefix("auditline.storage.")
        for name, value in vars(module).items():
            if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
                continue
            members = [(name, value)]
            if inspect.isclass(value):
                members = [
                    (f"{name}.{n}", m) for n, m in vars(value).items() if not n.startswith("_")
                ]
            for qualname, member in members:
                if inspect.iscoroutinefunction(member) and _takes_a_tenant(member):
                    found.add(f"{short}.{qualname}")
    return found


def test_every_repository_function_taking_a_tenant_has_a_wall_test() -> None:
    found = repository_functions_taking_a_tenant()
    assert "events.get_event" in found  # the introspection sees what it must
    assert found - COVERED.keys() == set(), "add a tenant-wall test and a COVERED entry"
    assert COVERED.keys() - found == set(), "COVERED names a function that is gone"
