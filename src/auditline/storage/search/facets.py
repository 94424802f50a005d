"""Facets: the top values of a few columns among a search's matches, in bounded time.

Exact when the matches can be grouped within ``facet_budget_ms`` (one pass over them,
the cheapest route ``pages.matching_rows`` knows: for a query of words and a time range,
one bitmap heap scan of the GIN index's matches). Past the budget the pass is cancelled
(its savepoint rolled back, the snapshot kept) and the newest ``facet_sample_rows``
matches are grouped instead, read the way a page is (walking the time order): every
count is then a lower bound (``gte``) and the answer says it is partial.
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
    rows_of,
    time_budget,
)
from auditline.storage.search.rows import Projection


def _columns(alias: str) -> sql.Composable:
    return sql.SQL(", ").join(
        [sql.Identifier(alias, "timestamp"), sql.Identifier(alias, "id")]
        + [sql.Identifier(alias, c) for c in FACET_FIELDS]
    )


_SAMPLE_ROWS: Final = Projection(_columns, 2 + len(FACET_FIELDS), 0, 1)


async def facets(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    request: FacetRequest,
    *,
    watermark: int,
    tuning: SearchTuning,
) -> Facets:
    """The top values per requested field; ``facet_budget_ms`` 0 counts the sample only."""
    if tuning.facet_budget_ms > 0:
        try:
            async with time_budget(conn, tuning.facet_budget_ms):
                return await _exact(conn, tenant, query, request, watermark)
        except errors.QueryCanceled:
            pass
    return await _sampled(conn, tenant, query, request, watermark, tuning)


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
