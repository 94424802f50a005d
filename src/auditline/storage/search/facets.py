"""Facets: the top values of a few columns among a search's matches, in bounded time.

Three ways, the first two exact (``eq``) and tried within ``facet_budget_ms``:

* A query of a time range alone (or nothing: a whole tenant), ``pages.rollups_apply``
  as for exact totals: from the hourly rollups, whole UTC hours from ``event_rollups``
  and the partial edge hours from the events, by the statistics' reads
  (``stats.value_counts``: every value of the small dimensions, the top users through
  the heavy hitters). Its cost follows the range's hours and values, not its events, so
  a whole tenant no grouped pass could count in time is exact here. The rollups count
  every event committed in the facets' snapshot; when the page's watermark is behind
  that snapshot's head (events, access records or removals committed in between, the
  normal case on a tenant being written to), the events the rollups count at or above
  the watermark are counted one by one, through ``event_ids (tenant_id, seq)``, and
  taken away: at most ``facet_sample_rows`` sequence numbers, else the grouped pass
  (:func:`rollup_facets` says why that is exact). Unset values are ``''`` in the
  rollups and NULL in the events; both are reported as None.
* Any other query (or too many events above the watermark): one grouped pass over the
  matches (materialised once), the cheapest route ``pages.matching_rows`` knows: for a
  query of words and a time range, one bitmap heap scan of the GIN index's matches.
* Past the budget either is cancelled (its savepoint rolled back, the snapshot kept) and
  the newest ``facet_sample_rows`` matches are grouped instead, read the way a page is
  (walking the time order): every count is then a lower bound (``gte``) and the answer
  says it is partial.

Every way ranks by ``search.model.ranked`` (count, then value in code-point order, unset
last), so the rollups and the grouped pass give the same answer on the same data.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from psycopg import errors, sql

from auditline.domain.tenants import TenantId
from auditline.search.model import (
    FACET_FIELDS,
    Count,
    Facet,
    FacetField,
    FacetRequest,
    Facets,
    PageRequest,
    Relation,
    SearchQuery,
    ranked,
)
from auditline.storage.database import Connection
from auditline.storage.search.compiler import Compiler, where_all
from auditline.storage.search.pages import (
    SearchTuning,
    matching_rows,
    read_watermark,
    rollups_apply,
    rows_of,
    time_budget,
)
from auditline.storage.search.rows import Projection
from auditline.storage.search.stats import value_counts


def _columns(alias: str) -> sql.Composable:
    return sql.SQL(", ").join(
        [sql.Identifier(alias, "timestamp"), sql.Identifier(alias, "id")]
        + [sql.Identifier(alias, c) for c in FACET_FIELDS]
    )


_SAMPLE_ROWS: Final = Projection(_columns, 2 + len(FACET_FIELDS), 0, 1)

# The rollup dimension counting each facet field (migration 0003).
_ROLLUP_DIMS: Final[dict[FacetField, str]] = {
    "action": "action", "user_id": "user", "resource_type": "resource_type",
    "severity": "severity", "outcome": "outcome",
}  # fmt: skip


async def facets(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    request: FacetRequest,
    *,
    watermark: int,
    tuning: SearchTuning,
) -> Facets:
    """The top values per requested field; ``facet_budget_ms`` 0 counts the sample only.

    Within the budget: from the rollups when they count this query's matches
    (:func:`rollup_facets`), taking away the events this snapshot holds at or above
    *watermark* when there are at most ``facet_sample_rows`` sequence numbers there, else
    by the grouped pass (also when the rollups' read ran out of budget: its cost follows
    the range's hours and values, and a long range of a sparse tenant may have more of
    those than events); past it, the sample. The budget bounds each statement (a
    statement timeout), so an answer takes at most a few budgets and the sample.

    That bound reuses the sample's size on purpose: it is how many events the facets
    already read and group one by one when the budget runs out, so taking away that many
    costs no more than the answer the budget would end in (each is one ``event_ids``
    index entry and one primary-key probe). It is checked on the sequence numbers (the
    head minus the watermark: every number counts, access records and removed events
    too, so it never undercounts), which costs nothing beyond the head already read. A
    page's own watermark is usually a few numbers behind (other searches' access records,
    the writes of that moment); a later page's, taken at the first page, may be far
    behind, and then the grouped pass answers as before.
    """
    if tuning.facet_budget_ms > 0:
        if rollups_apply(query):
            try:
                async with time_budget(conn, tuning.facet_budget_ms):
                    head = await read_watermark(conn, tenant)
                    if 0 <= head - watermark <= tuning.facet_sample_rows:
                        below = None if watermark == head else watermark
                        return await rollup_facets(conn, tenant, query, request, watermark=below)
            except errors.QueryCanceled:
                pass  # many sparse hours: the grouped pass over few events may still be exact
        try:
            async with time_budget(conn, tuning.facet_budget_ms):
                return await _exact(conn, tenant, query, request, watermark)
        except errors.QueryCanceled:
            pass
    return await _sampled(conn, tenant, query, request, watermark, tuning)


async def rollup_facets(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    request: FacetRequest,
    *,
    watermark: int | None = None,
    prune: bool | None = None,
    end_from_rollup: bool | None = None,
) -> Facets:
    """Exact facets of a query the hourly rollups count (:func:`rollups_apply` must hold)
    among the events below *watermark* (None: this snapshot's head, all of them).

    Whole UTC hours come from the rollups, the partial hours at the edges from the
    events, by the statistics' own reads (``stats.value_counts``: ``user_id`` ranked
    through the heavy hitters when the range is large). The same answer as the grouped
    pass: unset values are None there (NULL) as here (``''`` in the rollups, which never
    stands for a stored ``''``: the API refuses empty identifiers and outcomes), and
    both rank by :func:`ranked`. *prune* and *end_from_rollup* choose among equivalent
    reads, as for ``stats.stats``; the tests force each.

    **Below a watermark.** ``value_counts`` counts, in this snapshot, every event of the
    range but the access records, each once, whichever part counted it (a whole hour's
    rollup, an edge hour's events, or a trailing hour's rollup minus its later events).
    The events of that set at or above *watermark* (:func:`_later_counts`: the same
    predicate, ``compiler.base`` of the query, plus ``seq >= watermark``) are therefore
    each counted exactly once there, and subtracting their counts per value leaves the
    set ``seq < watermark`` that the grouped pass counts; a value left at 0 is dropped,
    as the grouped pass would never report it.

    The top *k* survives the subtraction only if enough candidates were asked for. With
    *d* distinct values of a field among the subtracted events, the true top *k* after
    subtraction lies within the top *k + d* before it, under the same ranking rule
    (``ranked``: count descending, then value): at most *d* of those *k + d* values lose
    anything, so at least *k* keep their counts, and each of those still ranks above
    every value outside the *k + d*, whose count could only drop (a value that ranked
    below an unchanged one, by count or by the tie rule, cannot rise above it by losing
    events). So ``value_counts`` is asked for the top *k + d*, with *d* the most distinct
    values of any requested field; the exact counts of that superset are subtracted,
    re-ranked and cut to *k*. Only ``user_id`` is cut by ``value_counts`` at all (the
    small dimensions come back whole; its unset count comes back always); a subtracted
    user outside those candidates cannot make the top *k* and is ignored.

    **Removals in between.** A retention, cleanup or archive batch committed after the
    page's snapshot has taken its events out of the rollups (the delete trigger, or
    ``forget_rollups`` with a partition drop, in the removing transaction) and out of
    the events alike, so this snapshot's rollups minus its events above the watermark
    still equal this snapshot's events below the watermark: the grouped pass's answer,
    which no later snapshot could make include the removed events either (the next page
    of the same cursor loses them the same way). The removal's own records are access
    records, which the rollups do not count. So a removal needs no detection and no
    fallback here; the tests show the answer equal to the grouped pass after one.
    """
    fields = request.fields
    later = {} if watermark is None else await _later_counts(conn, tenant, query, fields, watermark)
    spread = max((len(v) for v in later.values()), default=0)
    dims = [_ROLLUP_DIMS[f] for f in fields]
    counts = await value_counts(
        conn, tenant, query, dims=dims, top=request.size + spread, prune=prune,
        end_from_rollup=end_from_rollup,
    )  # fmt: skip
    out = []
    for f in fields:
        taken = later.get(f, Counter())
        left = [Count(c.key, c.count - taken[c.key]) for c in counts.counts[_ROLLUP_DIMS[f]]]
        out.append(Facet(f, ranked([c for c in left if c.count > 0])[: request.size], "eq"))
    return Facets(out)


async def _later_counts(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    fields: tuple[FacetField, ...],
    watermark: int,
) -> dict[FacetField, Counter[str | None]]:
    """Counts per value of *fields* among the events the rollups count for *query* (its
    range, no access records: ``compiler.base``, the rollup triggers' own exclusion of
    migration 0009) numbered *watermark* or later, in this snapshot.

    Found through the unique ``event_ids (tenant_id, seq)`` index (``events`` has none on
    ``seq``) and each read by its primary key, so the cost follows how many numbers lie
    above the watermark, not the tenant's size. ``event_ids`` rows of a dropped partition
    outlive its events for a while; they join nothing, as they should.
    """
    c = Compiler("e")
    t = c.param(tenant)
    where = [
        *c.base(tenant, query),
        sql.SQL("e.timestamp = a.timestamp AND e.id = a.id"),
    ]
    groups = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {name} AS f, {col}::text AS k, count(*) AS n FROM later GROUP BY 2").format(
            name=sql.Literal(f), col=sql.Identifier(f)
        )
        for f in fields
    )
    # The numbers first (a range of the unique index), then one primary-key probe each:
    # joined plainly, the planner preferred scanning the range's events and hashing them
    # against the numbers (68 k rows read for 40 numbers on an 80 k-event tenant). LIMIT 1
    # keeps each probe a probe (the key is unique), as in ``stats._candidates``.
    statement = sql.SQL(
        """WITH above AS MATERIALIZED (
             SELECT i.timestamp, i.id FROM event_ids i
              WHERE i.tenant_id = {t}::text AND i.seq >= {w}::bigint),
           later AS MATERIALIZED (
             SELECT e.* FROM above a
              CROSS JOIN LATERAL (SELECT {columns} FROM events e WHERE {where} LIMIT 1) e)
           {groups}"""
    ).format(
        t=t, w=c.param(watermark),
        columns=sql.SQL(", ").join(sql.Identifier("e", f) for f in fields),
        where=where_all(where), groups=groups,
    )  # fmt: skip
    cur = await conn.execute(statement, c.params)
    out: dict[FacetField, Counter[str | None]] = {f: Counter() for f in fields}
    for row in await cur.fetchall():
        out[row["f"]][row["k"]] += int(row["n"])
    return out


async def _exact(
    conn: Connection, tenant: TenantId, query: SearchQuery, request: FacetRequest, watermark: int
) -> Facets:
    """One pass over the matches (materialised once), grouped by each requested field.

    Ties are ranked by value in code-point order (``COLLATE "C"``, as Python sorts), so
    which values make the top *size* does not depend on the database's collation."""
    c = Compiler("e")
    fields = request.fields
    columns = sql.SQL(", ").join(sql.Identifier("e", f) for f in fields)
    groups = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {name} AS f, {col}::text AS k, count(*) AS n FROM m GROUP BY 2").format(
            name=sql.Literal(f), col=sql.Identifier(f)
        )
        for f in fields
    )
    statement = sql.SQL(
        """WITH m AS MATERIALIZED ({rows})
           SELECT f, k, n FROM (
             SELECT f, k, n,
                    row_number() OVER (PARTITION BY f
                                       ORDER BY n DESC, k COLLATE "C" ASC NULLS LAST) AS r
               FROM ({groups}) g) ranked
            WHERE r <= {size}"""
    ).format(
        rows=matching_rows(c, tenant, query, watermark, columns), groups=groups,
        size=c.param(request.size),
    )  # fmt: skip
    cur = await conn.execute(statement, c.params)
    rows = await cur.fetchall()
    return Facets([_facet(f, [r for r in rows if r["f"] == f], "eq") for f in fields])


def _facet(field: FacetField, rows: list[dict[str, Any]], relation: Relation) -> Facet:
    return Facet(field, ranked([Count(r["k"], int(r["n"])) for r in rows]), relation)


async def _sampled(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    request: FacetRequest,
    watermark: int,
    tuning: SearchTuning,
) -> Facets:
    """The newest ``facet_sample_rows`` matches, counted: lower bounds, unless they were
    all the matches there are (then exact after all)."""
    size = tuning.facet_sample_rows
    rows = await rows_of(
        conn, tenant, query, PageRequest(limit=size), watermark, tuning, _SAMPLE_ROWS
    )
    complete = len(rows) <= size
    rows = rows[:size]
    relation: Relation = "eq" if complete else "gte"
    out = []
    for field in request.fields:
        i = 2 + FACET_FIELDS.index(field)
        counts = Counter(None if r[i] is None else str(r[i]) for r in rows)
        top = ranked([Count(k, n) for k, n in counts.items()])
        out.append(Facet(field, top[: request.size], relation))
    return Facets(out, partial=not complete, sampled=None if complete else len(rows))
