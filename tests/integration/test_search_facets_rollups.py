"""Facets of a whole tenant or of a time range alone, read from the hourly rollups (issue #23).

The rollup answer (``facets.rollup_facets``) must be the grouped pass's answer
(``facets._exact``) on the same data: the same values, counts, order and relation, for
every size (so every cut through a tie), every way the statistics' reads can take (top
users proven from the heavy hitters or summed in full; the trailing partial hour from its
events or as its rollup minus its later events), and both checked against a count of the
events as written. The data spans 30 hours with empty hours among them; unset users,
resource types and outcomes; a three-way tie in user_id and in resource_type whose keys
sort differently by code point than by a linguistic collation, with the unset value in
it; access records (which neither answer may count); and a second tenant writing in the
same hours with values of its own that would top every list if they leaked in.

That ``facets()`` takes the rollup path is shown by its answer, not by a marker: a rollup
row that no event backs (written as the superuser) appears in its answer for a query of
the time range alone, and in no other answer.

A tenant being written to: the page's watermark is taken, then more events are committed
(in and out of every range, late ones dated in the old hours, values never seen below
the watermark, enough of one user to change the top, access records, another tenant's
writes), and the facets, read in a later snapshot with the old watermark, must still be
the grouped pass's answer below that watermark and the count of the events written
before it, from the rollups minus the later events (the phantom row shows which path
answered); the same after a removal committed in between; and by the grouped pass when
more numbers lie above the watermark than ``facet_sample_rows``.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from auditline.config import IngestSettings
from auditline.domain.access import ACCESS_RESOURCE
from auditline.domain.events import SEVERITIES, Event, EventDraft
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from auditline.search.model import (
    FACET_FIELDS,
    Count,
    Facet,
    FacetRequest,
    Facets,
    SearchFilters,
    SearchQuery,
    ranked,
)
from auditline.search.query import parse
from auditline.storage import retention as retention_store
from auditline.storage.database import Connection, tenant_transaction
from auditline.storage.events import insert_events
from auditline.storage.search import facets as facet_store
from auditline.storage.search.pages import SearchTuning, read_watermark, rollups_apply
from tests.integration.conftest import ACME, GLOBEX
from tests.integration.search_fixtures import base_time

HOURS: Final = 30
BASE: Final = base_time() - timedelta(hours=HOURS)
"""The first hour of the data (on the hour, three days ago)."""
TIED: Final = 9
"""Hours 0-8 each hold one event of every tied value (at half past): nine apiece."""
EVERYTHING: Final = FacetRequest(FACET_FIELDS, size=1000)
# Generous: the grouped pass must not fall back to the sample on a busy test machine.
TUNING: Final = SearchTuning(facet_budget_ms=60_000)

_USERS: Final = ("alice", "bob", "carol", "dave", "erin")
# alice is heavy in many hours (heavy-hitter rows, a provable top 1); the rest are light.
_USER_WEIGHTS: Final = (8, 3, 3, 2, 2)
_ACTIONS: Final = ("LOGIN", "READ", "UPDATE", "DELETE", "EXPORT")
_TYPES: Final = ("invoice", "document", "report")
# Ties, the only events without a user or a resource type: unset sorts last; by code
# point "Zeta" < "alpha" and "Zed" < "amy" (a linguistic collation would put them the
# other way round).
_TIED_USERS: Final = ("amy", "Zed", None)
_TIED_TYPES: Final = ("alpha", "Zeta", None)


def _draft(rng: random.Random, ts: datetime) -> EventDraft:
    user = rng.choices(_USERS, _USER_WEIGHTS)[0]
    return EventDraft(
        action=rng.choice(_ACTIONS), id=uuid.uuid4(), timestamp=ts,
        severity=rng.choices(SEVERITIES, (6, 3, 2, 1))[0], user_id=user,
        actor_type="user" if user else "system", resource_type=rng.choice(_TYPES),
        resource_id=f"r-{rng.randrange(20)}", outcome=rng.choice(("success", "failure", None)),
        message="something happened",
    )  # fmt: skip


def acme_drafts() -> list[EventDraft]:
    rng = random.Random("facets-rollups-acme")
    drafts: list[EventDraft] = []
    for hour in range(HOURS):
        if hour % 7 == 4 and hour > TIED:
            continue  # an hour without events (hours 11, 18 and 25)
        for i in range(rng.randrange(3, 14)):
            ts = BASE + timedelta(hours=hour, seconds=rng.randrange(3600), microseconds=i)
            drafts.append(_draft(rng, ts))
        if hour < TIED:
            for user, resource_type in zip(_TIED_USERS, _TIED_TYPES, strict=True):
                drafts.append(
                    EventDraft(
                        action="APPROVE", id=uuid.uuid4(),
                        timestamp=BASE + timedelta(hours=hour, minutes=30), user_id=user,
                        resource_type=resource_type, resource_id="t-1",
                    )
                )  # fmt: skip
    # The service's records of reads, in the same hours: neither answer counts them.
    for hour in range(0, HOURS, 3):
        for _ in range(5):
            drafts.append(
                EventDraft(
                    action="SEARCH", id=uuid.uuid4(),
                    timestamp=BASE + timedelta(hours=hour, minutes=rng.randrange(60)),
                    user_id="auditor", resource_type=ACCESS_RESOURCE, outcome="success",
                )
            )  # fmt: skip
    return drafts


def globex_drafts() -> list[EventDraft]:
    """Another tenant's activity in the same hours, with values acme never has, more of
    each than any acme value: a facet that counted them would show them first."""
    return [
        EventDraft(
            action="GLOBEX_ONLY", id=uuid.uuid4(),
            timestamp=BASE + timedelta(hours=hour, minutes=minute), user_id="globex-user",
            resource_type="globex-type", outcome="failure", severity="CRITICAL",
        )
        for hour in range(HOURS) for minute in range(0, 60, 4)
    ]  # fmt: skip


async def _store(pool: AsyncConnectionPool[Connection], tenant: TenantId,
                 drafts: Sequence[EventDraft]) -> list[Event]:  # fmt: skip
    events = prepare_events(tenant, drafts, limits=IngestSettings(), now=datetime.now(UTC))
    for i in range(0, len(events), 100):  # several statements, as batches arrive
        async with tenant_transaction(pool, tenant) as conn:
            await insert_events(conn, tenant, events[i : i + 100])
    return events


@pytest.fixture
async def written(pool: AsyncConnectionPool[Connection]) -> dict[TenantId, list[Event]]:
    return {
        ACME: await _store(pool, ACME, acme_drafts()),
        GLOBEX: await _store(pool, GLOBEX, globex_drafts()),
    }


def _expected(events: Sequence[Event], query: SearchQuery, request: FacetRequest) -> Facets:
    """The facets as counted from the events as written (the reference answer)."""
    start, end = query.filters.start, query.filters.end
    matching = [
        e for e in events
        if e.resource_type != ACCESS_RESOURCE
        and (start is None or e.timestamp >= start) and (end is None or e.timestamp < end)
    ]  # fmt: skip
    out = []
    for field in request.fields:
        counts = Counter(getattr(e, field) for e in matching)
        values = ranked([Count(k, n) for k, n in counts.items()])[: request.size]
        out.append(Facet(field, values, "eq"))
    return Facets(out)


_H, _M = timedelta(hours=1), timedelta(minutes=1)
QUERIES: Final = {
    "whole tenant": SearchQuery(),
    # partial hours at both ends, cutting through the tied hours
    "window": SearchQuery(
        filters=SearchFilters(start=BASE + 2 * _H + 47 * _M, end=BASE + 21 * _H + 13 * _M)
    ),
    "open end": SearchQuery(filters=SearchFilters(start=BASE + 5 * _H + 31 * _M)),
    "open start": SearchQuery(filters=SearchFilters(end=BASE + 6 * _H + 30 * _M)),
    # in another offset: the range's own hours are not UTC hours
    "half-hour offset": SearchQuery(
        filters=SearchFilters(
            start=(BASE + 3 * _H).astimezone(timezone(timedelta(hours=5, minutes=30))),
            end=(BASE + 12 * _H).astimezone(timezone(timedelta(hours=-3, minutes=-30))),
        )
    ),
    "within an hour": SearchQuery(
        filters=SearchFilters(start=BASE + 3 * _H + 10 * _M, end=BASE + 3 * _H + 50 * _M)
    ),
    "after the last event": SearchQuery(filters=SearchFilters(start=BASE + (HOURS + 2) * _H)),
}


def test_the_data_holds_ties_that_a_cut_must_break() -> None:
    """The comparisons below would not see a wrong tie rule without ties at a cut."""
    events = prepare_events(ACME, acme_drafts(), limits=IngestSettings(), now=datetime.now(UTC))
    users = Counter(e.user_id for e in events if e.resource_type != ACCESS_RESOURCE)
    types = Counter(e.resource_type for e in events if e.resource_type != ACCESS_RESOURCE)
    assert {users[u] for u in _TIED_USERS} == {TIED}
    assert {types[t] for t in _TIED_TYPES} == {TIED}
    assert all(rollups_apply(q) for q in QUERIES.values())
    assert None in {e.outcome for e in events}


@pytest.mark.parametrize("name", QUERIES)
async def test_rollup_facets_equal_the_grouped_pass(
    pool: AsyncConnectionPool[Connection], written: dict[TenantId, list[Event]], name: str
) -> None:
    query = QUERIES[name]
    ways = [(None, None), (True, True), (True, False), (False, True), (False, False)]
    for tenant in (ACME, GLOBEX):
        async with tenant_transaction(pool, tenant) as conn:
            mark = await read_watermark(conn, tenant)
            # every size: each cut through the ties, and the whole lists
            for size in [*range(1, 9), 1000]:
                request = FacetRequest(FACET_FIELDS, size=size)
                exact = await facet_store._exact(conn, tenant, query, request, mark)
                assert exact == _expected(written[tenant], query, request), (name, tenant, size)
                for prune, end_from_rollup in ways:
                    got = await facet_store.rollup_facets(
                        conn, tenant, query, request, prune=prune,
                        end_from_rollup=end_from_rollup,
                    )  # fmt: skip
                    assert got == exact, (name, tenant, size, prune, end_from_rollup)
                one = FacetRequest(("user_id",), size=size)  # a field alone
                alone = await facet_store.rollup_facets(conn, tenant, query, one)
                assert alone.facets == [exact.facets[FACET_FIELDS.index("user_id")]]
                # and through the entry point, at the snapshot's head
                chosen = await facet_store.facets(
                    conn, tenant, query, request, watermark=mark, tuning=TUNING
                )
                assert chosen == exact, (name, tenant, size)


async def test_a_whole_tenant_is_faceted_without_other_tenants_or_access_records(
    pool: AsyncConnectionPool[Connection], written: dict[TenantId, list[Event]]
) -> None:
    async with tenant_transaction(pool, ACME) as conn:
        got = await facet_store.rollup_facets(conn, ACME, SearchQuery(), EVERYTHING)
    keys = {f.field: [v.key for v in f.values] for f in got.facets}
    assert not {"GLOBEX_ONLY", "SEARCH"} & set(keys["action"])
    assert not {"globex-user", "auditor"} & set(keys["user_id"])
    assert ACCESS_RESOURCE not in keys["resource_type"]
    assert None in keys["user_id"]  # unset values are reported, as None
    assert None in keys["outcome"]
    assert not got.partial
    assert {f.relation for f in got.facets} == {"eq"}
    counted = sum(v.count for v in got.facets[0].values)
    assert counted == sum(e.resource_type != ACCESS_RESOURCE for e in written[ACME])


async def test_a_whole_tenant_without_events_has_empty_exact_facets(
    pool: AsyncConnectionPool[Connection],
) -> None:
    """No rollup row at all (``stats.value_counts`` answers before it has a range to
    read): every facet of the whole tenant is an empty, exact list, not a partial answer,
    while another tenant has events in the same hours."""
    await _store(pool, GLOBEX, globex_drafts())
    empty = _expected([], SearchQuery(), EVERYTHING)
    assert [f.values for f in empty.facets] == [[] for _ in FACET_FIELDS]
    async with tenant_transaction(pool, ACME) as conn:
        mark = await read_watermark(conn, ACME)
        assert mark == 0
        for prune in (None, True, False):
            got = await facet_store.rollup_facets(conn, ACME, SearchQuery(), EVERYTHING,
                                                  prune=prune)  # fmt: skip
            assert got == empty, prune
        chosen = await facet_store.facets(conn, ACME, SearchQuery(), EVERYTHING, watermark=mark,
                                          tuning=TUNING)  # fmt: skip
    assert chosen == empty
    assert not chosen.partial
    assert chosen.sampled is None
    assert {f.relation for f in chosen.facets} == {"eq"}


async def test_facets_of_a_time_range_alone_read_the_rollups(
    pool: AsyncConnectionPool[Connection],
    database_url: str,
    written: dict[TenantId, list[Event]],
) -> None:
    # A rollup row that no event backs, in a whole hour of acme: only an answer read from
    # the rollups can hold it (the grouped pass and the sample read the events).
    phantom = Count("PHANTOM", 1000)
    with psycopg.connect(database_url) as conn:  # the superuser: no row-level security
        conn.execute(
            """INSERT INTO event_rollups (tenant_id, dim, bucket, k1, k2, n)
               VALUES (%s, 'action', %s, 'PHANTOM', '', 1000)""",
            (ACME, BASE + 10 * _H),
        )
    top = FacetRequest(("action",), size=1)
    window = QUERIES["window"]  # its whole hours hold the phantom's
    filtered = SearchQuery(filters=replace(window.filters, actions=_ACTIONS))
    worded = SearchQuery(filters=window.filters, q=parse("something"))
    for tenant in (ACME, GLOBEX):
        async with tenant_transaction(pool, tenant) as conn:
            mark = await read_watermark(conn, tenant)
            mine = tenant == ACME
            # Below mark - 1: every event written but the last numbered one.
            cur = await conn.execute(
                "SELECT id FROM event_ids WHERE tenant_id = %s AND seq = %s", (tenant, mark - 1)
            )
            last = await cur.fetchone()
            assert last is not None
            below = [e for e in written[tenant] if e.id != last["id"]]
            assert len(below) == len(written[tenant]) - 1
            for query in (SearchQuery(), window):
                got = await facet_store.facets(conn, tenant, query, top, watermark=mark,
                                               tuning=TUNING)  # fmt: skip
                assert (got.facets[0].values == [phantom]) == mine, (tenant, query)
                # a watermark behind the head: still the rollups, minus the events above it
                behind = await facet_store.facets(
                    conn, tenant, query, top, watermark=mark - 1, tuning=TUNING
                )
                assert (behind.facets[0].values == [phantom]) == mine, (tenant, query)
                # ... unless more numbers lie above it than facet_sample_rows allows
                strict = replace(TUNING, facet_sample_rows=0)
                grouped = await facet_store.facets(
                    conn, tenant, query, top, watermark=mark - 1, tuning=strict
                )
                assert grouped == _expected(below, query, top), (tenant, query)
                assert grouped.facets[0].values != [phantom]
            # More than a time range: the grouped pass, counting what the filter keeps.
            kept = {
                "filtered": [e for e in written[tenant] if e.action in _ACTIONS],
                "worded": [e for e in written[tenant] if e.message and "something" in e.message],
            }
            assert bool(kept["filtered"]) == bool(kept["worded"]) == mine  # globex: neither
            for name, query in (("filtered", filtered), ("worded", worded)):
                got = await facet_store.facets(conn, tenant, query, top, watermark=mark,
                                               tuning=TUNING)  # fmt: skip
                assert got.facets[0].values != [phantom], (tenant, name)
                assert got == _expected(kept[name], window, top), (tenant, name)


# -- a tenant being written to -----------------------------------------------------------

_LATE_ACTION: Final = "LATECOMER"
_LATE_USER: Final = "newbie"


def later_drafts(before: Sequence[Event]) -> list[EventDraft]:
    """What acme writes after the page's watermark was taken.

    Values seen only here (the action and user above: the rollups count them, and the
    answer below the watermark must not hold them at all, not even at 0); enough events
    of the second user, bob, to put him above alice in the whole tenant, so that a top 1
    cut before subtracting would name bob; late events dated in the old hours (a whole
    hour, the tied hours, the window's partial edge hours on both sides of its ends);
    events after every other event; and access records (which the rollups do not count,
    so taking them away would lower INFO and success).
    """
    counted = Counter(e.user_id for e in before if e.resource_type != ACCESS_RESOURCE)
    lead = counted["alice"] - counted["bob"]
    assert lead > 0  # alice is the top user below the watermark
    rng = random.Random("facets-rollups-later")
    drafts = [
        replace(_draft(rng, BASE + timedelta(hours=hour % HOURS, minutes=17)), user_id="bob")
        for hour in range(lead + 3)
    ]
    when = [
        BASE + 2 * _H + 50 * _M,  # the window's leading partial hour, inside it
        BASE + 2 * _H + 10 * _M,  # the same hour, before the window
        BASE + 7 * _H + 30 * _M,  # a whole hour of every range that holds it
        BASE + 21 * _H + 5 * _M,  # the window's trailing partial hour, inside it
        BASE + 21 * _H + 40 * _M,  # the same hour, after the window
        BASE + 27 * _H,  # outside the window
        BASE + (HOURS + 3) * _H,  # after every event below the watermark
    ]
    for ts in when:
        drafts.append(_draft(rng, ts))
        drafts.append(replace(_draft(rng, ts + _M), action=_LATE_ACTION, user_id=_LATE_USER))
    for hour in range(TIED):  # one more for a tied user and type: the tie breaks above
        drafts.append(
            EventDraft(
                action="APPROVE", id=uuid.uuid4(), timestamp=BASE + hour * _H + 45 * _M,
                user_id="Zed", resource_type="Zeta", resource_id="t-1",
            )
        )  # fmt: skip
    for hour in range(0, HOURS, 2):
        drafts.append(
            EventDraft(
                action="SEARCH", id=uuid.uuid4(), timestamp=BASE + hour * _H + 3 * _M,
                user_id="auditor", resource_type=ACCESS_RESOURCE, outcome="success",
            )
        )  # fmt: skip
    return drafts


async def _phantom(database_url: str) -> Count:
    """A rollup row no event backs, in acme's hour 10 (a whole hour of the whole tenant and
    of the window): an answer holding it was read from the rollups."""
    with psycopg.connect(database_url) as conn:  # the superuser: no row-level security
        conn.execute(
            """INSERT INTO event_rollups (tenant_id, dim, bucket, k1, k2, n)
               VALUES (%s, 'action', %s, 'PHANTOM', '', 1000)""",
            (ACME, BASE + 10 * _H),
        )
    return Count("PHANTOM", 1000)


async def test_facets_below_an_older_watermark_take_the_later_events_from_the_rollups(
    pool: AsyncConnectionPool[Connection],
    database_url: str,
    written: dict[TenantId, list[Event]],
) -> None:
    before = written[ACME]
    async with tenant_transaction(pool, ACME) as conn:
        mark = await read_watermark(conn, ACME)
    later = await _store(pool, ACME, later_drafts(before))
    await _store(pool, GLOBEX, globex_drafts()[:50])
    ways = [(None, None), (True, True), (True, False), (False, True), (False, False)]
    async with tenant_transaction(pool, ACME) as conn:
        head = await read_watermark(conn, ACME)
        assert head == mark + len(later)
        everything = await facet_store.rollup_facets(conn, ACME, SearchQuery(), EVERYTHING)
        for name, query in QUERIES.items():
            for size in [*range(1, 9), 1000]:
                request = FacetRequest(FACET_FIELDS, size=size)
                exact = await facet_store._exact(conn, ACME, query, request, mark)
                assert exact == _expected(before, query, request), (name, size)
                for prune, end_from_rollup in ways:
                    got = await facet_store.rollup_facets(
                        conn, ACME, query, request, watermark=mark, prune=prune,
                        end_from_rollup=end_from_rollup,
                    )  # fmt: skip
                    assert got == exact, (name, size, prune, end_from_rollup)
                chosen = await facet_store.facets(
                    conn, ACME, query, request, watermark=mark, tuning=TUNING
                )
                assert chosen == exact, (name, size)
        # The cases the data was made for. At the head the rollups hold the later values
        # and bob on top; below the watermark neither.
        keys = {f.field: [v.key for v in f.values] for f in everything.facets}
        assert _LATE_ACTION in keys["action"]
        assert _LATE_USER in keys["user_id"]
        assert keys["user_id"][0] == "bob"
        below = await facet_store.rollup_facets(
            conn, ACME, SearchQuery(), EVERYTHING, watermark=mark
        )
        keys = {f.field: [v.key for v in f.values] for f in below.facets}
        assert _LATE_ACTION not in keys["action"]  # counted 0: gone, not reported as 0
        assert _LATE_USER not in keys["user_id"]
        for prune in (None, True, False):
            top = await facet_store.rollup_facets(
                conn, ACME, SearchQuery(), FacetRequest(("user_id",), size=1), watermark=mark,
                prune=prune,
            )  # fmt: skip
            alice = sum(e.user_id == "alice" and e.resource_type != ACCESS_RESOURCE
                        for e in before)  # fmt: skip
            assert top.facets[0].values == [Count("alice", alice)], prune

    # Which path answered: a rollup row no event backs shows in the answer.
    phantom = await _phantom(database_url)
    one = FacetRequest(("action",), size=1)
    for query in (SearchQuery(), QUERIES["window"]):
        async with tenant_transaction(pool, ACME) as conn:
            got = await facet_store.facets(conn, ACME, query, one, watermark=mark, tuning=TUNING)
            assert got.facets[0].values == [phantom], query


async def test_too_many_events_above_the_watermark_fall_back_to_the_grouped_pass(
    pool: AsyncConnectionPool[Connection],
    database_url: str,
    written: dict[TenantId, list[Event]],
) -> None:
    async with tenant_transaction(pool, ACME) as conn:
        mark = await read_watermark(conn, ACME)
    later = await _store(pool, ACME, later_drafts(written[ACME]))
    phantom = await _phantom(database_url)
    one = FacetRequest(("action",), size=1)
    window = QUERIES["window"]
    async with tenant_transaction(pool, ACME) as conn:
        # exactly as many numbers above the watermark as allowed: the rollups
        at_bound = replace(TUNING, facet_sample_rows=len(later))
        got = await facet_store.facets(conn, ACME, window, one, watermark=mark, tuning=at_bound)
        assert got.facets[0].values == [phantom]
        # one more than allowed: the grouped pass, exact all the same
        past = replace(TUNING, facet_sample_rows=len(later) - 1)
        got = await facet_store.facets(conn, ACME, window, one, watermark=mark, tuning=past)
        assert got.facets[0].values != [phantom]
        assert got == _expected(written[ACME], window, one)


async def test_a_removal_between_the_page_and_the_facets_leaves_them_the_grouped_pass_s(
    pool: AsyncConnectionPool[Connection],
    database_url: str,
    written: dict[TenantId, list[Event]],
) -> None:
    """A cleanup committed after the watermark was taken removes events below it (and a
    late one above it) and records itself in the log: the rollups lose the removed events
    as the events do, so the answer is still the grouped pass's below the watermark, and
    counts what was written before it and is still stored."""
    async with tenant_transaction(pool, ACME) as conn:
        mark = await read_watermark(conn, ACME)
    late = EventDraft(action=_LATE_ACTION, id=uuid.uuid4(), timestamp=BASE + _H, user_id=_LATE_USER)
    await _store(pool, ACME, [late, *later_drafts(written[ACME])])
    cut = BASE + 4 * _H
    async with tenant_transaction(pool, ACME) as conn:
        assert await retention_store.lock_tenant(conn, ACME) is False
        removed = await retention_store.delete_batch(conn, ACME, cut, 10_000)
        await retention_store.record_ranges(
            conn, ACME, removed.ranges, reason="cleanup", actor="tests", job_id=None
        )
        record = EventDraft(
            action="DELETE", id=uuid.uuid4(), resource_type=ACCESS_RESOURCE,
            resource_id="cleanup", after={"seq_ranges": [list(r) for r in removed.ranges]},
        )  # fmt: skip
        events = prepare_events(ACME, [record], limits=IngestSettings(), now=datetime.now(UTC))
        await insert_events(conn, ACME, events)
    assert removed.ranges[0][0] < mark <= removed.ranges[-1][1]  # on both sides of it
    kept = [e for e in written[ACME] if e.timestamp >= cut]
    assert len(kept) < len(written[ACME])
    async with tenant_transaction(pool, ACME) as conn:
        for name, query in QUERIES.items():
            for size in (1, 2, 3, 1000):
                request = FacetRequest(FACET_FIELDS, size=size)
                exact = await facet_store._exact(conn, ACME, query, request, mark)
                assert exact == _expected(kept, query, request), (name, size)
                got = await facet_store.facets(
                    conn, ACME, query, request, watermark=mark, tuning=TUNING
                )
                assert got == exact, (name, size)
    phantom = await _phantom(database_url)
    async with tenant_transaction(pool, ACME) as conn:
        got = await facet_store.facets(
            conn, ACME, SearchQuery(), FacetRequest(("action",), size=1), watermark=mark,
            tuning=TUNING,
        )  # fmt: skip
        assert got.facets[0].values == [phantom]
