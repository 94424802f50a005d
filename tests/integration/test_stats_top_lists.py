"""Top users and resources from heavy hitters: the same answer as adding up every row."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from auditline.bench.seed import seed
from auditline.config import DatabaseSettings, IngestSettings
from auditline.domain.events import EventDraft
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from auditline.search.model import (
    Count,
    FacetRequest,
    SearchFilters,
    SearchQuery,
    Stats,
    ranked,
)
from auditline.storage.database import Connection, open_pool, set_tenant
from auditline.storage.events import ensure_partition, insert_events
from auditline.storage.search import facets as facet_store
from auditline.storage.search import stats as store
from auditline.storage.tenants import create_tenant
from tests.integration.rollup_checks import fold_all, heavy_mismatches

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TENANT = TenantId("seeded-000")


class Recording:
    """A connection that remembers the statements a stats answer sent (a real one runs
    them)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sent: list[Any] = []

    @property
    def statements(self) -> int:
        return len(self.sent)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(args[0])
        return await self.conn.execute(*args, **kwargs)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Connection]]:
    pool = await open_pool(database_url, DatabaseSettings(pool_min_size=1, pool_max_size=2))
    yield pool
    await pool.close()


async def both_ways(
    pool: AsyncConnectionPool[Connection], start: datetime, end: datetime, top: int
) -> tuple[Stats, Stats, int]:
    """(pruned, summed, statements the pruned answer took) in one snapshot."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        await set_tenant(conn, TENANT)
        recording = Recording(conn)
        kwargs: dict[str, Any] = {"start": start, "end": end, "interval": "hour", "top": top}
        pruned = await store.stats(recording, TENANT, SearchQuery(), prune=True, **kwargs)  # type: ignore[arg-type]
        summed = await store.stats(conn, TENANT, SearchQuery(), prune=False, **kwargs)
    return pruned, summed, recording.statements


async def test_pruned_top_lists_equal_the_full_sums(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    # Zipf users and resources over two days: top users are heavy in most hours, top
    # resources in few, so some rankings are proven and some must fall back.
    await seed(pool, events=12_000, tenants=1, days=2, prefix="seeded", seed_value=7, now=NOW)
    end = NOW - timedelta(minutes=1)
    windows = [
        (end - timedelta(days=2), end),
        (end - timedelta(hours=30, minutes=17), end - timedelta(minutes=43)),
        (end - timedelta(hours=20), end - timedelta(hours=2)),  # whole hours only
        (end - timedelta(hours=5, minutes=30), end),
    ]
    ways: set[int] = set()
    for start, stop in windows:
        for top in (1, 3, 10):
            pruned, summed, statements = await both_ways(pool, start, stop, top)
            assert pruned.source == "rollup"
            assert pruned == summed, (start, stop, top)
            assert len(summed.top_users) == top
            ways.add(statements)
    # One statement: every top list proven from heavy hitters; two: a fallback ran.
    assert ways == {1, 2}
    with psycopg.connect(database_url) as conn:
        assert heavy_mismatches(conn) == []


async def test_heavy_rows_follow_deletes(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    await seed(pool, events=3_000, tenants=1, days=1, prefix="seeded", seed_value=3, now=NOW)
    with psycopg.connect(database_url) as conn:
        fold_all(conn)
        heavy_before = conn.execute("SELECT count(*) FROM event_rollup_heavy").fetchone()
        assert heavy_before is not None
        assert heavy_before[0] > 0
        # Retention deletes with a maintenance role: the oldest half of the events.
        deleted = conn.execute(
            """DELETE FROM events WHERE tenant_id = %s
                AND timestamp < (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY timestamp)
                                   FROM events WHERE tenant_id = %s)""",
            (TENANT, TENANT),
        ).rowcount
        assert deleted > 1000
        assert heavy_mismatches(conn) == []
        below = conn.execute(
            "SELECT count(*) FROM event_rollup_heavy WHERE n < auditline_heavy_min()"
        ).fetchone()
        assert below is not None
        assert below[0] > 0  # emptied rows stay, with their exact (now small) count
    start, end = NOW - timedelta(days=1, hours=1), NOW
    pruned, summed, _ = await both_ways(pool, start, end, 5)
    assert pruned == summed
    assert sum(u.count for u in summed.top_users) > 0


async def test_a_tie_with_the_bound_is_not_taken_as_proof(
    pool: AsyncConnectionPool[Connection],
) -> None:
    # Whole hours 0-2. "b-heavy": 5 events in hour 0 (a heavy row). "a-light": 3 in hour
    # 0 and 1 in each of hours 1 and 2 (never heavy, so no candidate). The light capacity
    # is min(8, 3) + 1 + 1 = 5, exactly b-heavy's count: b-heavy cannot be proven first,
    # and rightly so, since a-light also counts 5 and wins the tie by key.
    base = NOW - timedelta(hours=6)
    drafts = [EventDraft(action="READ", user_id="b-heavy", timestamp=base + timedelta(minutes=m))
              for m in range(1, 6)]  # fmt: skip
    drafts += [
        EventDraft(action="READ", user_id="a-light", timestamp=base + timedelta(hours=h, minutes=m))
        for h, m in ((0, 10), (0, 11), (0, 12), (1, 5), (2, 5))
    ]
    async with pool.connection() as conn:
        await create_tenant(conn, TENANT, name="t", retention_days=90, archive_after_days=None,
                            settings={})  # fmt: skip
        async with conn.transaction():
            await set_tenant(conn, TENANT)
            await ensure_partition(conn, base)
            events = prepare_events(TENANT, drafts, limits=IngestSettings(), now=NOW)
            await insert_events(conn, TENANT, events)
    pruned, summed, statements = await both_ways(pool, base, base + timedelta(hours=3), 1)
    assert [(u.key, u.count) for u in summed.top_users] == [("a-light", 5)]
    assert pruned == summed
    assert statements == 2  # the proof was tried, refused, and the full sum ran


async def test_a_trailing_partial_hour_counts_the_same_from_its_rollup_as_from_its_events(
    pool: AsyncConnectionPool[Connection],
) -> None:
    await seed(pool, events=6_000, tenants=1, days=1, prefix="seeded", seed_value=11, now=NOW)
    # Ends inside an hour (events on both sides of it), on an hour, and past the last event.
    windows = [
        (NOW - timedelta(hours=9, minutes=10), NOW - timedelta(minutes=43)),
        (NOW - timedelta(hours=5), NOW - timedelta(hours=2, minutes=1)),
        (NOW - timedelta(hours=4), NOW - timedelta(hours=1)),
        (NOW - timedelta(hours=3, minutes=30), NOW + timedelta(minutes=20)),
    ]
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        await set_tenant(conn, TENANT)
        for start, end in windows:
            for prune in (True, False):
                kwargs: dict[str, Any] = {
                    "start": start, "end": end, "interval": "hour", "top": 5, "prune": prune,
                }  # fmt: skip
                answers = [
                    await store.stats(conn, TENANT, SearchQuery(), end_from_rollup=way, **kwargs)
                    for way in (True, False)
                ]
                assert answers[0] == answers[1], (start, end, prune)
                assert answers[0].source == "rollup"
                assert answers[0].total > 0


async def test_a_range_given_in_another_offset_counts_the_same_as_in_utc(
    pool: AsyncConnectionPool[Connection],
) -> None:
    # Rollups are UTC hours; +05:30 puts the range's hour boundaries half-way through them.
    await seed(pool, events=6_000, tenants=1, days=1, prefix="seeded", seed_value=12, now=NOW)
    india = timezone(timedelta(hours=5, minutes=30))
    start, end = NOW - timedelta(hours=9, minutes=10), NOW - timedelta(minutes=43)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        await set_tenant(conn, TENANT)
        answers = [
            await store.stats(conn, TENANT, SearchQuery(), start=start.astimezone(tz),
                              end=end.astimezone(tz), interval="hour", top=5)
            for tz in (UTC, india)
        ]  # fmt: skip
    assert answers[0].source == answers[1].source == "rollup"
    assert answers[0].total > 0
    assert answers[1] == answers[0]


async def test_random_ranges_count_what_the_events_hold(
    pool: AsyncConnectionPool[Connection],
) -> None:
    # Ranges starting and ending at any second, in several offsets and intervals, some past
    # the last event: whichever way each edge is counted, the totals are the events'.
    await seed(pool, events=4_000, tenants=1, days=1, prefix="seeded", seed_value=13, now=NOW)
    rng = random.Random(5)
    offsets = [timedelta(0), timedelta(hours=5, minutes=30), timedelta(hours=-3, minutes=-45)]
    lo = NOW - timedelta(hours=26)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        await set_tenant(conn, TENANT)
        sources: set[str] = set()
        for _ in range(30):
            a, b = sorted(lo + timedelta(seconds=rng.randrange(28 * 3600)) for _ in range(2))
            zone = timezone(rng.choice(offsets))
            stats = await store.stats(conn, TENANT, SearchQuery(), start=a.astimezone(zone),
                                      end=b.astimezone(zone), top=3,
                                      interval=rng.choice(["minute", "hour", "day"]))  # fmt: skip
            cur = await conn.execute(
                """SELECT severity::text AS key, count(*) AS n FROM events
                    WHERE tenant_id = %s AND timestamp >= %s AND timestamp < %s
                    GROUP BY severity""",
                (TENANT, a, b),
            )
            expected = {row["key"]: row["n"] for row in await cur.fetchall()}
            assert stats.total == sum(expected.values()), (a, b, zone)
            assert {c.key: c.count for c in stats.by_severity} == expected, (a, b, zone)
            assert sum(bucket.count for bucket in stats.timeline) == stats.total
            sources.add(stats.source)
    assert sources == {"rollup", "events"}  # both ways were exercised


# Whole hours 0-11, ten events each: "boss" 6 (a heavy row every hour), "a-minion" 2,
# "b-minion" 1 and one without a user. A key with no heavy row has at most
# min(10, heavy_min - 1) = 3 events per hour, 36 in all: boss's 72 beats that, so the
# heavy hitters prove the top 1; nothing proves a top 2 (no second candidate).
_HOURS = 12
_BASE = NOW - timedelta(hours=20)


async def _write_hours(pool: AsyncConnectionPool[Connection]) -> None:
    users = ["boss"] * 6 + ["a-minion"] * 2 + ["b-minion", None]
    drafts = [
        EventDraft(action="READ", user_id=user, severity="INFO" if i % 2 else "WARNING",
                   timestamp=_BASE + timedelta(hours=h, minutes=5 * i))
        for h in range(_HOURS) for i, user in enumerate(users)
    ]  # fmt: skip
    async with pool.connection() as conn:
        await create_tenant(conn, TENANT, name="t", retention_days=90, archive_after_days=None,
                            settings={})  # fmt: skip
        async with conn.transaction():
            await set_tenant(conn, TENANT)
            await ensure_partition(conn, _BASE)
            events = prepare_events(TENANT, drafts, limits=IngestSettings(), now=NOW)
            await insert_events(conn, TENANT, events)


async def test_the_heavy_hitters_prove_a_clearly_heavy_top_user_of_a_whole_tenant(
    pool: AsyncConnectionPool[Connection],
) -> None:
    """The proof does succeed where it must (not only fall back to the full sum), and
    refuses what it cannot prove; the counts are the events' either way."""
    await _write_hours(pool)
    boss, unset = Count("boss", 6 * _HOURS), Count(None, _HOURS)
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, TENANT)
        whole = SearchQuery()  # open at both ends: the tenant's first to last rollup hour
        got = await store.value_counts(conn, TENANT, whole, dims=["user"], top=1, prune=True)
        assert got.proven == {"user"}
        assert ranked(got.counts["user"]) == [boss, unset]
        summed = await store.value_counts(conn, TENANT, whole, dims=["user"], top=1, prune=False)
        assert summed.proven == frozenset()
        assert ranked(summed.counts["user"]) == [boss, unset]
        two = await store.value_counts(conn, TENANT, whole, dims=["user"], top=2, prune=True)
        assert two.proven == frozenset()  # the second place has no candidate: summed
        assert ranked(two.counts["user"]) == [boss, Count("a-minion", 2 * _HOURS), unset]
        # and the facets read through it
        facets = await facet_store.rollup_facets(
            conn, TENANT, whole, FacetRequest(("user_id",), size=1), prune=True
        )
        assert facets.facets[0].values == [boss]


def _size_reads(recording: Recording) -> int:
    """How many of the recorded statements read the range's size (``stats._rows``)."""
    return sum(isinstance(s, str) and "coalesce(sum(n), 0)" in s for s in recording.sent)


async def test_the_range_s_size_is_read_only_when_a_top_list_is_to_be_ranked(
    pool: AsyncConnectionPool[Connection],
) -> None:
    """Without *prune*, the size of the range decides how top lists are ranked: a
    statement of its own, which counts without a ranked dimension would waste. Statistics
    always rank users and resources, so they still read it first."""
    await _write_hours(pool)
    start, end = _BASE, _BASE + timedelta(hours=_HOURS)  # closed: no first/last hour read
    query = SearchQuery(filters=SearchFilters(start=start, end=end))
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, TENANT)
        plain = Recording(conn)
        counted = await store.value_counts(plain, TENANT, query,  # type: ignore[arg-type]
                                           dims=["action", "severity"], top=1)  # fmt: skip
        assert (plain.statements, _size_reads(plain)) == (1, 0)
        assert counted.counts["action"] == [Count("READ", 10 * _HOURS)]
        assert sorted(counted.counts["severity"], key=lambda c: c.key or "") == [
            Count("INFO", 5 * _HOURS), Count("WARNING", 5 * _HOURS),
        ]  # fmt: skip
        users = Recording(conn)
        counted = await store.value_counts(users, TENANT, query, dims=["user"], top=1)  # type: ignore[arg-type]
        assert (users.statements, _size_reads(users)) == (2, 1)
        assert ranked(counted.counts["user"]) == [Count("boss", 6 * _HOURS), Count(None, _HOURS)]
        full = Recording(conn)
        stats = await store.stats(full, TENANT, SearchQuery(), start=start, end=end,  # type: ignore[arg-type]
                                  interval="hour", top=1)  # fmt: skip
        # the range's size first (below the threshold: summed in full), then the sums
        assert (full.statements, _size_reads(full)) == (2, 1)
        assert stats.source == "rollup"
        assert stats.total == 10 * _HOURS
        assert stats.top_users == [Count("boss", 6 * _HOURS)]
