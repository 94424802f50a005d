"""The full-text index route (``auditline_text_matches``) against a plain ordered query.

Since migration 0005 the function searches in windows sized from the matches found so far
(a day first, then wider) instead of whole months; whatever the windows, its keys must be
exactly the first *lim* matches in order. The data mixes a dense burst (the first window
answers), sparse matches over three months (several windows, some empty), equal
timestamps, another tenant's matches and rows above the snapshot watermark.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from auditline.config import IngestSettings
from auditline.domain.events import EventDraft
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from auditline.storage import rollups
from auditline.storage.database import Connection, set_tenant
from auditline.storage.events import ensure_partition, insert_events
from auditline.storage.search.pages import read_watermark

ACME, GLOBEX = TenantId("acme"), TenantId("globex")

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WORD = "quarantine"
TSQUERY = "(plainto_tsquery('english', %(w)s) || plainto_tsquery('simple', %(w)s))"
FIRST_TEN = (
    f"SELECT ts, id FROM auditline_text_matches({TSQUERY}, '-infinity', 'infinity',"  # noqa: S608
    " %(below)s, NULL, NULL, true, 10)"
)
INFINITY = datetime.max.replace(tzinfo=UTC)
MINUS_INFINITY = datetime.min.replace(tzinfo=UTC)

# Ages of the matching events: a burst in the last ten hours, two with one timestamp,
# then ever sparser ones back to 75 days (three monthly partitions).
BURST = [timedelta(minutes=17 * i + 3) for i in range(30)]
SPARSE = [timedelta(days=d) for d in (1.5, 2.5, 3, 7, 7, 7.2, 15, 40, 41, 75)]


def drafts(ages: list[timedelta], message: str, user: str | None = None) -> list[EventDraft]:
    return [EventDraft(action="READ", id=uuid.uuid4(), timestamp=NOW - age, message=message,
                       user_id=user)
            for age in ages]  # fmt: skip


async def store(conn: Connection, tenant: TenantId, batch: list[EventDraft]) -> None:
    async with conn.transaction():
        await set_tenant(conn, tenant)
        for draft in batch:
            assert draft.timestamp is not None
            await ensure_partition(conn, draft.timestamp)
        events = prepare_events(tenant, batch, limits=IngestSettings(), now=NOW)
        await insert_events(conn, tenant, events)


async def keys(conn: Connection, statement: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    cur = await conn.execute(statement, params)
    return [(r["ts"], r["id"]) for r in await cur.fetchall()]


@pytest.fixture
async def seeded(pool: AsyncConnectionPool[Connection]) -> int:
    """Stores the events; returns a watermark that hides the last three acme events."""
    noise = [timedelta(hours=6 * i + 1) for i in range(320)]  # every 6 hours, 80 days
    async with pool.connection() as conn:
        await store(conn, GLOBEX, drafts(BURST[::3] + SPARSE[::2], f"{WORD} elsewhere"))
        await store(conn, ACME, drafts(noise, "routine read"))
        await store(conn, ACME, drafts(SPARSE + BURST, f"{WORD} alert"))
        # Stored last, so above the watermark: matches a snapshot taken before must miss.
        await store(
            conn, ACME, drafts([timedelta(minutes=1), timedelta(days=5), timedelta(days=60)], WORD)
        )
        async with conn.transaction():
            await set_tenant(conn, ACME)
            return await read_watermark(conn, ACME) - 3


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize(
    ("lo", "hi"),
    [(MINUS_INFINITY, INFINITY), (NOW - timedelta(days=20), NOW - timedelta(days=2))],
)
async def test_windows_return_exactly_the_first_matches_in_order(
    pool: AsyncConnectionPool[Connection],
    seeded: int,
    descending: bool,
    lo: datetime,
    hi: datetime,
) -> None:
    direction = "DESC" if descending else "ASC"
    reference = f"""
        SELECT e.timestamp AS ts, e.id FROM events e
         WHERE e.tenant_id = 'acme' AND e.search_vector @@ {TSQUERY}
           AND e.timestamp >= %(lo)s AND e.timestamp < %(hi)s AND e.seq < %(below)s
           AND (%(after_ts)s::timestamptz IS NULL
                OR (CASE WHEN %(descending)s THEN (e.timestamp, e.id) < (%(after_ts)s, %(after_id)s)
                         ELSE (e.timestamp, e.id) > (%(after_ts)s, %(after_id)s) END))
         ORDER BY e.timestamp {direction}, e.id {direction}
         LIMIT %(lim)s"""  # noqa: S608 - the direction is one of two literals
    function = f"""
        SELECT ts, id FROM auditline_text_matches(
            {TSQUERY}, %(lo)s, %(hi)s, %(below)s, %(after_ts)s, %(after_id)s,
            %(descending)s, %(lim)s)"""  # noqa: S608 - no values in the text
    params: dict[str, Any] = {
        "w": WORD, "lo": lo, "hi": hi, "below": seeded, "descending": descending,
        "after_ts": None, "after_id": None,
    }  # fmt: skip
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, ACME)
        everything = await keys(conn, reference, {**params, "lim": 1000})
        # The data exercises what it should: matches spread over more than one window.
        assert len(everything) >= 4
        assert abs(everything[0][0] - everything[-1][0]) > timedelta(days=5)
        afters = [None, everything[2], everything[len(everything) // 2]]
        for after in afters:
            if after is not None:
                params["after_ts"], params["after_id"] = after
            for lim in (1, 2, 3, 5, 29, 31, 34, 1000):
                expected = await keys(conn, reference, {**params, "lim": lim})
                got = await keys(conn, function, {**params, "lim": lim})
                assert got == expected, (after, lim)
            # Without a limit the function returns every match (unordered): the caller
            # sorts and re-checks them.
            unlimited = await keys(conn, function, {**params, "lim": None})
            assert sorted(unlimited) == sorted(await keys(conn, reference, {**params, "lim": 1000}))


async def test_a_word_absent_from_the_range_returns_nothing(
    pool: AsyncConnectionPool[Connection], seeded: int
) -> None:
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, ACME)
        for word in ("elsewhere", "nowhere"):  # globex's word, and a word nobody wrote
            got = await keys(conn, FIRST_TEN, {"w": word, "below": seeded})
            assert got == []


async def test_rollup_primary_keys_carry_the_counts(pool: AsyncConnectionPool[Connection]) -> None:
    """Statistics read the rollups index-only: `n` is in both primary keys' leaf tuples,
    and the upserts that maintain them still find their rows through those keys."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """SELECT c.relname, x.indnkeyatts, pg_get_indexdef(x.indexrelid) AS def
                 FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
                WHERE x.indisprimary
                  AND x.indrelid IN ('event_rollups'::regclass, 'event_rollup_heavy'::regclass)
                ORDER BY 1"""
        )
        rows = await cur.fetchall()
        assert [(r["relname"], r["indnkeyatts"]) for r in rows] == [
            ("event_rollup_heavy_pkey", 5), ("event_rollups_pkey", 5),
        ]  # fmt: skip
        assert all(r["def"].endswith("INCLUDE (n)") for r in rows)
        # Two batches in one hour, each folded: the second fold updates the rows the first
        # inserted (its upserts infer their conflict target from the new keys), and makes
        # the user heavy.
        for minutes in (range(1, 4), range(4, 9)):
            await store(conn, ACME, drafts([timedelta(minutes=m) for m in minutes], "c", "u1"))
            async with conn.transaction():
                await set_tenant(conn, ACME)
                assert await rollups.fold(conn, ACME)
        async with conn.transaction():
            await set_tenant(conn, ACME)
            cur = await conn.execute(
                """SELECT r.dim, r.n, h.n AS heavy FROM event_rollups r
                     LEFT JOIN event_rollup_heavy h USING (tenant_id, dim, bucket, k1, k2)
                    WHERE r.tenant_id = 'acme' AND r.dim IN ('total', 'user')"""
            )
            counts = {r["dim"]: (r["n"], r["heavy"]) for r in await cur.fetchall()}
    assert counts == {"total": (8, None), "user": (8, 8)}
