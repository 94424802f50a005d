"""Pages of matches, export lines and counts: the plans, chosen by what the query holds.

Plan choices (measured; see ``docs/search.md`` and ``docs/benchmarks/search.md``):

* Structured filters and keyset positions compile to conditions the tenant-first B-tree
  indexes answer in (timestamp, id) order; the position is written both as a plain
  ``timestamp <=`` bound (usable by every index whose next column is the timestamp) and
  as the exact row comparison.
* Full text is ordered by time, which no single index gives. A query with positive
  full-text terms first *walks* the tenant's rows in the requested order under the other
  conditions (at most ``probe_rows`` of them) and filters on the text: a common word fills
  the page within a few hundred rows. If the walk runs out first, the matches it found
  measure the words' density; when the rest of the page is expected within
  ``probe_max_rows`` more rows it walks on once, otherwise (or if that walk runs out too)
  the GIN index (``auditline_text_matches``, which works under row-level security; see
  migration 0003) supplies the keys after the last row walked, and each key is fetched
  with one primary-key probe under the policy. The function searches from the end the
  order starts at in time windows (a day, then as wide as the matches found so far say
  the rest of the page needs; migration 0005), and a BRIN index on the timestamp lets
  PostgreSQL AND the GIN bitmap with each window, so a window costs the heap pages of
  its own matches rather than those of the whole month.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from psycopg import errors, sql

from auditline.domain.access import ACCESS_RESOURCE
from auditline.domain.tenants import TenantId
from auditline.search.model import (
    Order,
    Page,
    PageRequest,
    Position,
    SearchFilters,
    SearchQuery,
    Total,
)
from auditline.search.query import Node, Text, walk
from auditline.storage.database import Connection
from auditline.storage.search.compiler import (
    Compiler,
    order_by,
    rest_of_tree,
    text_terms,
    where_all,
)
from auditline.storage.search.lines import line_projection
from auditline.storage.search.rows import (
    EVENT_ROWS,
    Projection,
    Row,
    event_columns,
    fetch_rows,
    to_stored,
)

_ONE_MICROSECOND: Final = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SearchTuning:
    """Knobs of the full-text plan; defaults measured in docs/benchmarks/search.md."""

    probe_rows: int = 2000
    probe_max_rows: int = 10_000
    exact_total_limit: int = 50_000
    total_budget_ms: int = 100
    facet_budget_ms: int = 200
    facet_sample_rows: int = 5000


async def read_watermark(conn: Connection, tenant: TenantId) -> int:
    """The tenant's next sequence number: ``seq < watermark`` is what this snapshot sees.

    Sequence numbers are assigned under the tenant's log-head lock and committed with it,
    so in any snapshot the visible events are exactly those below the visible head.
    """
    cur = await conn.execute(
        "SELECT next_seq FROM tenant_log_heads WHERE tenant_id = %s", (tenant,)
    )
    row = await cur.fetchone()
    return 0 if row is None else int(row["next_seq"])


async def search_page(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    page: PageRequest,
    *,
    watermark: int,
    tuning: SearchTuning,
) -> Page:
    """One page of matches in (timestamp, id) order, restricted to ``seq < watermark``."""
    rows = await rows_of(conn, tenant, query, page, watermark, tuning, EVENT_ROWS)
    items = [to_stored(r) for r in rows[: page.limit]]
    more = len(rows) > page.limit
    last = items[-1].event if items else None
    nxt = Position(last.timestamp, last.id) if more and last is not None else None
    total = None
    if page.include_total:
        total = await search_total(conn, tenant, query, watermark, tuning=tuning)
    return Page(items=items, next=nxt, watermark=watermark, total=total)


async def export_lines(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    page: PageRequest,
    *,
    fmt: str,
    watermark: int,
    tuning: SearchTuning,
) -> tuple[list[str], Position | None]:
    """Like :func:`search_page`, but each match comes back as one encoded export line."""
    rows = await rows_of(conn, tenant, query, page, watermark, tuning, line_projection(fmt))
    more = len(rows) > page.limit
    last = rows[page.limit - 1] if more else None
    lines = [r[0] for r in rows[: page.limit]]
    return lines, (Position(last[1], last[2]) if last is not None else None)


async def rows_of(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    page: PageRequest,
    watermark: int,
    tuning: SearchTuning,
    projection: Projection,
) -> list[Row]:
    """Up to ``page.limit + 1`` matches in page order, as *projection* selects them (one
    more tells whether a next page exists)."""
    terms = text_terms(query.q)
    want = page.limit + 1
    if terms:
        return await _probe_then_index(
            conn, tenant, query, page, terms, want, watermark, tuning, projection
        )
    return await _plain(conn, tenant, query, page, want, watermark, projection)


def _conditions(
    c: Compiler,
    tenant: TenantId,
    query: SearchQuery,
    watermark: int,
    after: Position | None,
    order: Order,
    *,
    tree: Node | None,
) -> list[sql.Composable]:
    conditions = c.base(tenant, query)
    conditions.append(c.watermark(watermark))
    if after is not None:
        conditions.extend(c.keyset(after, order))
    if tree is not None:
        conditions.append(c.node(tree))
    return conditions


async def _plain(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    page: PageRequest,
    want: int,
    watermark: int,
    projection: Projection,
) -> list[Row]:
    c = Compiler("e")
    where = _conditions(c, tenant, query, watermark, page.after, page.order, tree=query.q)
    statement = sql.SQL(
        "SELECT {cols} FROM events e WHERE {where} ORDER BY {order} LIMIT {limit}"
    ).format(
        cols=projection.columns("e"), where=where_all(where), order=order_by("e", page.order),
        limit=c.param(want),
    )  # fmt: skip
    return await fetch_rows(conn, statement, c.params)


async def _probe_then_index(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    page: PageRequest,
    terms: list[Text],
    want: int,
    watermark: int,
    tuning: SearchTuning,
    projection: Projection,
) -> list[Row]:
    """Full-text matches in order: walk the time order while that is cheap, else the GIN.

    1. Probe: walk the next `budget` candidates (every condition but the text terms) in
       the requested order and filter them on the text. A common word fills the page
       within a few hundred rows and the walk stops there.
    2. If the budget ran out, the matches found so far measure the words' density: when
       the rest of the page is expected within `probe_max_rows` more rows, walk on (once,
       with that budget); otherwise, or if that walk also runs out, ask the GIN index for
       the matches after the last candidate walked. A bitmap over all matches of a
       mid-frequency word costs far more than walking to the next few of them (measured:
       94 ms against a few ms on 10 M events), while a rare word is the index's job.
    """
    found: list[Row] = []
    after = page.after
    budget = tuning.probe_rows
    walked = 0
    for _ in range(2):
        matched, marker = await _probe(
            conn, tenant, query, page.order, after, terms, want - len(found), budget,
            watermark, projection,
        )  # fmt: skip
        found += matched
        walked += budget
        if len(found) >= want or marker is None:
            return found[:want]
        after = marker
        if not found:
            break
        budget = math.ceil((want - len(found)) * walked / len(found) * 1.5)
        if budget > tuning.probe_max_rows:
            break
    more = await _via_text_index(
        conn, tenant, query, page.order, after, terms, want - len(found), watermark, projection
    )
    return [*found, *more]


async def _probe(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    order: Order,
    after: Position | None,
    terms: list[Text],
    want: int,
    budget: int,
    watermark: int,
    projection: Projection,
) -> tuple[list[Row], Position | None]:
    """Up to *want* text matches among the next *budget* candidates after *after*.

    Returns them and, when the budget ran out, the position of the last candidate (the
    marker: returned by the query even if it does not match, so its presence says the
    walk was cut short and where to continue). The inner LIMIT is pulled lazily.
    """
    c = Compiler("e")
    inner = _conditions(c, tenant, query, watermark, after, order, tree=rest_of_tree(query.q))
    outer = Compiler("c")
    outer.params = c.params  # one parameter namespace for the statement
    text_match = sql.SQL(" AND ").join(outer.node(t) for t in terms)
    statement = sql.SQL(
        """SELECT {outer_cols}, ({text_match}) AS matched, c.rn
             FROM (SELECT {inner_cols}, e.search_vector,
                          row_number() OVER (ORDER BY {inner_order}) AS rn
                     FROM events e WHERE {where}
                    ORDER BY {inner_order} LIMIT {budget}) c
            WHERE ({text_match}) OR c.rn = {budget}
            ORDER BY {outer_order} LIMIT {want}"""
    ).format(
        outer_cols=projection.columns("c"), text_match=text_match, inner_cols=event_columns("e"),
        inner_order=order_by("e", order), where=where_all(inner), budget=c.param(budget),
        outer_order=order_by("c", order), want=c.param(want),
    )  # fmt: skip
    probed = await fetch_rows(conn, statement, c.params)
    flag, rn = projection.width, projection.width + 1
    matched = [r[:flag] for r in probed if r[flag]]
    marker = next((r for r in probed if r[rn] == budget), None)
    if len(matched) >= want or marker is None:
        return matched, None
    return matched, Position(marker[projection.ts], marker[projection.id])


def _bounds(
    c: Compiler, f: SearchFilters, order: Order, after: Position | None
) -> tuple[sql.Composable, sql.Composable]:
    """[lo, hi) for the text-index lookup: the filters' range narrowed by the position."""
    lo, hi = f.start, f.end
    if after is not None:
        if order == "desc":
            edge = after.timestamp + _ONE_MICROSECOND
            hi = edge if hi is None else min(hi, edge)
        else:
            lo = after.timestamp if lo is None else max(lo, after.timestamp)
    return (
        sql.SQL("'-infinity'::timestamptz") if lo is None else c.param(lo),
        sql.SQL("'infinity'::timestamptz") if hi is None else c.param(hi),
    )


def _text_matches(
    c: Compiler,
    query: SearchQuery,
    order: Order,
    after: Position | None,
    terms: list[Text],
    watermark: int,
    lim: int | None,
) -> sql.Composable:
    """A FROM item ``m(ts, id)``: the GIN index's keys for the text terms.

    With *lim* (only when nothing but the text, the time range and the position filters)
    the function returns just the first *lim* keys in order.
    """
    lo, hi = _bounds(c, query.filters, order, after)
    tsquery = sql.SQL(" && ").join(c.tsquery(t) for t in terms)
    return sql.SQL(
        """auditline_text_matches(
             {q}, {lo}, {hi}, {below}::bigint, {after_ts}::timestamptz, {after_id}::uuid,
             {descending}, {lim}::integer) m"""
    ).format(
        q=tsquery, lo=lo, hi=hi, below=c.param(watermark),
        after_ts=c.param(None if after is None else after.timestamp),
        after_id=c.param(None if after is None else after.id),
        descending=sql.Literal(order == "desc"), lim=c.param(lim),
    )  # fmt: skip


def _probe_keys(
    matches: sql.Composable, where: list[sql.Composable], columns: sql.Composable
) -> sql.Composable:
    """FROM items: the rows of ``events e`` with the keys of *matches*, under *where*.

    One primary-key probe per key, by construction: ``OFFSET 0`` keeps the lateral
    subquery from being flattened into a join, which the planner may otherwise run as a
    merge join walking the tenant's whole time index in the hope that LIMIT stops it early
    (measured: 310 ms instead of 7 ms for a word with fewer matches than a page).
    """
    return sql.SQL(
        """{matches} CROSS JOIN LATERAL (
             SELECT {columns} FROM events e
              WHERE {where} AND e.timestamp = m.ts AND e.id = m.id OFFSET 0) e"""
    ).format(matches=matches, columns=columns, where=where_all(where))


def text_only(query: SearchQuery) -> bool:
    """Nothing but full-text terms and the time range restricts this query."""
    return query.filters.only_time and query.only_user is None and rest_of_tree(query.q) is None


async def _via_text_index(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    order: Order,
    after: Position | None,
    terms: list[Text],
    want: int,
    watermark: int,
    projection: Projection,
) -> list[Row]:
    c = Compiler("e")
    where = _conditions(c, tenant, query, watermark, after, order, tree=query.q)
    lim = want if text_only(query) else None
    matches = _text_matches(c, query, order, after, terms, watermark, lim)
    statement = sql.SQL("SELECT {cols} FROM {rows} ORDER BY {order} LIMIT {limit}").format(
        cols=projection.columns("e"), rows=_probe_keys(matches, where, event_columns("e")),
        order=order_by("e", order), limit=c.param(want),
    )  # fmt: skip
    return await fetch_rows(conn, statement, c.params)


def text_facts(c: Compiler, query: SearchQuery, watermark: int, lim: int | None) -> sql.Composable:
    """A FROM item ``e(action, user_id, resource_type, severity, outcome)``: one row per
    match of a :func:`text_only` query, read with one bitmap heap scan (migration 0020)."""
    terms = text_terms(query.q)
    lo, hi = _bounds(c, query.filters, "desc", None)
    return sql.SQL(
        "auditline_text_facts({q}, {lo}, {hi}, {below}::bigint, {hidden}::text, {lim}::integer) e"
    ).format(
        q=sql.SQL(" && ").join(c.tsquery(t) for t in terms), lo=lo, hi=hi,
        below=c.param(watermark),
        hidden=c.param(None if query.access_included else ACCESS_RESOURCE), lim=c.param(lim),
    )  # fmt: skip


def matching_rows(
    c: Compiler, tenant: TenantId, query: SearchQuery, watermark: int, columns: sql.Composable
) -> sql.Composable:
    """``SELECT columns FROM ...`` (over alias ``e``): every match with ``seq < watermark``,
    by the cheapest route the query allows (no order: for counting and grouping).

    *columns* may name only ``action``, ``user_id``, ``resource_type``, ``severity`` and
    ``outcome`` (what the text-only route returns).
    """
    terms = text_terms(query.q)
    if terms and text_only(query):
        return sql.SQL("SELECT {} FROM {}").format(columns, text_facts(c, query, watermark, None))
    where = _conditions(c, tenant, query, watermark, None, "desc", tree=query.q)
    if terms:
        matches = _text_matches(c, query, "desc", None, terms, watermark, None)
        return sql.SQL("SELECT {} FROM {}").format(columns, _probe_keys(matches, where, columns))
    return sql.SQL("SELECT {} FROM events e WHERE {}").format(columns, where_all(where))


async def count_matches(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    watermark: int,
    *,
    limit: int | None,
    via_keys: bool = False,
) -> Total:
    """How many events match: exact up to *limit*, else ``Total(limit, "gte")``.

    A query of text terms and a time range only is counted with one bitmap heap scan
    (``auditline_text_facts``); any other with full text through the GIN index's keys, each
    re-checked with a primary-key probe; one without full text through the B-tree indexes.
    *via_keys* takes the key route for text-only queries too (how they were counted before
    migration 0020: the benchmark's side-by-side).
    """
    c = Compiler("e")
    terms = text_terms(query.q)
    if terms and text_only(query) and not via_keys:
        lim = None if limit is None else limit + 1
        inner = sql.SQL("SELECT 1 FROM {}").format(text_facts(c, query, watermark, lim))
    elif terms:
        where = _conditions(c, tenant, query, watermark, None, "desc", tree=query.q)
        matches = _text_matches(c, query, "desc", None, terms, watermark, None)
        inner = sql.SQL("SELECT 1 FROM {}").format(_probe_keys(matches, where, sql.SQL("1")))
    else:
        where = _conditions(c, tenant, query, watermark, None, "desc", tree=query.q)
        inner = sql.SQL("SELECT 1 FROM events e WHERE {}").format(where_all(where))
    if limit is not None:
        inner = sql.SQL("{} LIMIT {}").format(inner, c.param(limit + 1))
    cur = await conn.execute(sql.SQL("SELECT count(*) AS n FROM ({}) x").format(inner), c.params)
    row = await cur.fetchone()
    n = 0 if row is None else int(row["n"])
    if limit is not None and n > limit:
        return Total(limit, "gte")
    return Total(n, "eq")


@asynccontextmanager
async def time_budget(conn: Connection, budget_ms: int) -> AsyncIterator[None]:
    """Statements inside get at most *budget_ms*, and never more than the surrounding
    transaction's own ``statement_timeout`` (a read transaction's bound stays the bound):
    past it they raise ``QueryCanceled``.

    They run in a savepoint with its own statement timeout that is always rolled back
    (what runs inside only reads, so nothing is lost): that restores the surrounding
    transaction's timeout without asking for it, and after a cancellation the snapshot
    transaction carries on. The smaller of the two is chosen in the same statement that
    sets it (``pg_settings`` gives the current value in milliseconds; 0 is no timeout)."""
    async with conn.transaction(force_rollback=True):
        await conn.execute(
            """SELECT set_config('statement_timeout',
                      (CASE WHEN s.setting::bigint = 0 THEN %(budget)s
                            ELSE least(s.setting::bigint, %(budget)s) END)::text, true)
                 FROM pg_settings s WHERE s.name = 'statement_timeout'""",
            {"budget": budget_ms},
        )
        yield


async def search_total(
    conn: Connection, tenant: TenantId, query: SearchQuery, watermark: int, *, tuning: SearchTuning
) -> Total:
    """``include_total``: exact when that is cheap, else a labelled bound or estimate.

    0. With nothing but a time range (no ``q``, no other filter, no role restriction,
       access records left out) and the snapshot's own head as watermark (a first page),
       count exactly from the hourly rollups: whole hours from ``event_rollup_rows``
       (folded counts and unfolded deltas, migration 0021), the partial hours at the edges
       from the events (:func:`rollup_total`), without limit.
    1. Otherwise count exactly, up to ``exact_total_limit`` and within ``total_budget_ms``: ``eq``.
    2. Past the limit, PostgreSQL's estimate when it is above the limit (``approx``),
       else the limit as a lower bound (``gte``): the count proved at least that many.
    3. Past the budget, the estimate (``approx``): nothing was proved.
    """
    try:
        async with time_budget(conn, tuning.total_budget_ms):
            counted: Total | None = None
            if rollups_apply(query) and watermark == await read_watermark(conn, tenant):
                counted = await rollup_total(conn, tenant, query, watermark)
            else:
                counted = await count_matches(
                    conn, tenant, query, watermark, limit=tuning.exact_total_limit
                )
    except errors.QueryCanceled:
        counted = None
    if counted is not None and counted.exact:
        return counted
    estimate = await planner_estimate(conn, tenant, query, watermark)
    if counted is None or estimate > counted.value:
        return Total(estimate, "approx")
    return counted


def rollups_apply(query: SearchQuery) -> bool:
    """Whether the hourly rollups count this query's matches (they count every event but
    the access records, migration 0009)."""
    return (
        query.q is None
        and query.filters.only_time
        and query.only_user is None
        and not query.access_included
    )


def _hour(ts: datetime, *, up: bool) -> datetime:
    floor = ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return floor + timedelta(hours=1) if up and floor != ts else floor


async def rollup_total(
    conn: Connection, tenant: TenantId, query: SearchQuery, watermark: int
) -> Total:
    """The exact number of events in the query's time range (:func:`rollups_apply` must
    hold, and *watermark* be this snapshot's head: rollups count every committed event).

    Whole UTC hours come from the rollups (an index-only range scan of the folded counts,
    plus the deltas not yet folded); the partial hours at the edges, at most two, are
    counted from the events."""
    start, end = query.filters.start, query.filters.end
    h0 = None if start is None else _hour(start, up=True)
    h1 = None if end is None else _hour(end, up=False)
    if h0 is not None and h1 is not None and h0 >= h1:  # within one hour: events only
        return await count_matches(conn, tenant, query, watermark, limit=None)
    cur = await conn.execute(
        """SELECT coalesce(sum(n), 0) AS n FROM event_rollup_rows
            WHERE tenant_id = %s AND dim = 'total'
              AND bucket >= coalesce(%s, '-infinity'::timestamptz)
              AND bucket < coalesce(%s, 'infinity'::timestamptz)""",
        (tenant, h0, h1),
    )
    row = await cur.fetchone()
    n = 0 if row is None else int(row["n"])
    edges = [(start, h0), (h1, end)]
    for lo, hi in edges:
        if lo is not None and hi is not None and lo < hi:
            edge = replace(query, filters=replace(query.filters, start=lo, end=hi))
            n += (await count_matches(conn, tenant, edge, watermark, limit=None)).value
    return Total(n, "eq")


async def planner_estimate(
    conn: Connection, tenant: TenantId, query: SearchQuery, watermark: int
) -> int:
    """PostgreSQL's estimate of the number of matches (EXPLAIN, nothing executed).

    Full-text terms are asked in the English and the simple configuration ORed; the
    planner adds the two selectivities, although a word's two lexemes nearly always match
    the same events, which doubled its estimates. So each configuration is estimated
    alone and the larger taken (the union holds at least that many). Measured error in
    docs/search.md; the planner knows a word's frequency from the statistics ANALYZE keeps
    (its most common lexemes) and assumes it independent of the tenant.
    """
    estimates = [0]
    has_text = query.q is not None and any(isinstance(n, Text) for n in walk(query.q))
    configs = ["english", "simple"] if has_text else ["english"]
    for config in configs:
        c = Compiler("e", configs=(config,))
        where = _conditions(c, tenant, query, watermark, None, "desc", tree=query.q)
        statement = sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM events e WHERE {}").format(
            where_all(where)
        )
        cur = await conn.execute(statement, c.params)
        row = await cur.fetchone()
        if row is None:
            continue
        plan = next(iter(row.values()))
        if isinstance(plan, str):
            plan = json.loads(plan)
        estimates.append(round(float(plan[0]["Plan"]["Plan Rows"])))
    return max(estimates)
