"""Facets: the top values of a few columns among a search's matches, in bounded time.

Three ways, the first two exact (``eq``) and tried within ``facet_budget_ms``:

* A query of a time range alone (or nothing: a whole tenant) read at the snapshot's own
  log head (``pages.rollups_apply``, as for exact totals): from the hourly rollups,
  whole UTC hours from ``event_rollups`` and the partial edge hours from the events, by
  the statistics' reads (``stats.value_counts``: every value of the small dimensions,
  the top users through the heavy hitters). Its cost follows the range's hours and
  values, not its events, so a whole tenant no grouped pass could count in time is
  exact here. Unset values are ``''`` in the rollups and NULL in the events; both are
  reported as None.
* Any other query: one grouped pass over the matches (materialised once), the cheapest
  route ``pages.matching_rows`` knows: for a query of words and a time range, one bitmap
  heap scan of the GIN index's matches.
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
from auditline.storage.search.compiler import Compiler
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

    Within the budget: from the rollups when they count this query's matches as this
    snapshot sees them (:func:`rollup_facets`), else by the grouped pass; past it, the
    sample."""
    if tuning.facet_budget_ms > 0:
        try:
            async with time_budget(conn, tuning.facet_budget_ms):
                if rollups_apply(query) and watermark == await read_watermark(conn, tenant):
                    return await rollup_facets(conn, tenant, query, request)
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
    prune: bool | None = None,
    end_from_rollup: bool | None = None,
) -> Facets:
    """Exact facets of a query the hourly rollups count (:func:`rollups_apply` must hold,
    and the caller's watermark be this snapshot's head: rollups count every committed
    event, as for ``pages.rollup_total``).

    Whole UTC hours come from the rollups, the partial hours at the edges from the
    events, by the statistics' own reads (``stats.value_counts``: ``user_id`` ranked
    through the heavy hitters when the range is large). The same answer as the grouped
    pass: unset values are None there (NULL) as here (``''`` in the rollups, which never
    stands for a stored ``''``: the API refuses empty identifiers and outcomes), and
    both rank by :func:`ranked`. *prune* and *end_from_rollup* choose among equivalent
    reads, as for ``stats.stats``; the tests force each.
    """
    dims = [_ROLLUP_DIMS[f] for f in request.fields]
    counts = await value_counts(
        conn, tenant, query, dims=dims, top=request.size, prune=prune,
        end_from_rollup=end_from_rollup,
    )  # fmt: skip
    return Facets(
        [Facet(f, ranked(counts[_ROLLUP_DIMS[f]])[: request.size], "eq") for f in request.fields]
    )


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
