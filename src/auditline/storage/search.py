"""SQL for search, export and statistics: the query-language compiler and the plans.

Everything is composed with :mod:`psycopg.sql`; user values only ever travel as bound
parameters (named placeholders), never inside the SQL text.

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

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import orjson
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb, set_json_loads

from auditline.domain.events import Event, StoredEvent, TenantId
from auditline.integrity.leaf import canonical_ip
from auditline.search.model import (
    Order,
    Page,
    PageRequest,
    Position,
    SearchFilters,
    SearchQuery,
    Total,
)
from auditline.search.query import And, Compare, Match, Node, Not, Text
from auditline.storage.database import Connection

_INTEGER: Final = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_SQL_OP: Final = {">": sql.SQL(">"), ">=": sql.SQL(">="), "<": sql.SQL("<"), "<=": sql.SQL("<=")}
_JSONPATH_OP: Final = {">": ">", ">=": ">=", "<": "<", "<=": "<="}
_MATCH_COLUMNS: Final = {
    "user_id": "user_id",
    "session_id": "session_id",
    "action": "action",
    "resource_type": "resource_type",
    "resource_id": "resource_id",
    "request_id": "request_id",
    "outcome": "outcome",
    "actor_type": "actor_type",
}


class Compiler:
    """Turns filters and query ASTs into SQL conditions over one table alias.

    Collects the bound parameters as it goes; one compiler per statement.
    """

    def __init__(self, alias: str = "e") -> None:
        self.alias = alias
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> sql.Composable:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return sql.Placeholder(name)

    def col(self, name: str) -> sql.Composable:
        return sql.Identifier(self.alias, name)

    # -- structured filters

    def filters(self, f: SearchFilters) -> list[sql.Composable]:
        c = self.col
        out: list[sql.Composable] = []
        if f.start is not None:
            out.append(sql.SQL("{} >= {}").format(c("timestamp"), self.param(f.start)))
        if f.end is not None:
            out.append(sql.SQL("{} < {}").format(c("timestamp"), self.param(f.end)))
        for field in ("user_id", "session_id", "resource_type", "resource_id", "request_id",
                      "outcome", "actor_type"):  # fmt: skip
            value = getattr(f, field)
            if value is not None:
                out.append(sql.SQL("{} = {}::text").format(c(field), self.param(value)))
        if len(f.actions) == 1:
            out.append(sql.SQL("{} = {}::text").format(c("action"), self.param(f.actions[0])))
        elif f.actions:
            out.append(
                sql.SQL("{} = ANY({}::text[])").format(c("action"), self.param(list(f.actions)))
            )
        if f.severities:
            out.append(
                sql.SQL("{} = ANY({}::severity[])").format(
                    c("severity"), self.param(list(f.severities))
                )
            )
        if f.min_severity is not None:
            out.append(
                sql.SQL("{} >= {}::severity").format(c("severity"), self.param(f.min_severity))
            )
        if f.ip_network is not None:
            out.append(sql.SQL("{} <<= {}::inet").format(c("ip_address"), self.param(f.ip_network)))
        return out

    def base(self, tenant: TenantId, query: SearchQuery) -> list[sql.Composable]:
        """Tenant, filters and the role restriction (not the ``q`` tree)."""
        out: list[sql.Composable] = [
            sql.SQL("{} = {}::text").format(self.col("tenant_id"), self.param(tenant))
        ]
        out.extend(self.filters(query.filters))
        if query.only_user is not None:
            out.append(
                sql.SQL("{} = {}::text").format(self.col("user_id"), self.param(query.only_user))
            )
        return out

    def keyset(self, after: Position, order: Order) -> list[sql.Composable]:
        ts, ident = self.param(after.timestamp), self.param(after.id)
        c = self.col
        if order == "desc":
            return [
                sql.SQL("{} <= {}").format(c("timestamp"), ts),
                sql.SQL("({}, {}) < ({}, {}::uuid)").format(c("timestamp"), c("id"), ts, ident),
            ]
        return [
            sql.SQL("{} >= {}").format(c("timestamp"), ts),
            sql.SQL("({}, {}) > ({}, {}::uuid)").format(c("timestamp"), c("id"), ts, ident),
        ]

    def watermark(self, watermark: int) -> sql.Composable:
        return sql.SQL("{} < {}::bigint").format(self.col("seq"), self.param(watermark))

    # -- the query language

    def node(self, node: Node) -> sql.Composable:
        if isinstance(node, Text):
            return sql.SQL("{} @@ {}").format(self.col("search_vector"), self.tsquery(node))
        if isinstance(node, Match):
            return self.match(node)
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Not):
            # coalesce: NOT over a NULL column (no user, no IP, ...) is true, as a reader
            # of "-user_id:bob" expects, instead of SQL's unknown.
            return sql.SQL("NOT coalesce(({}), false)").format(self.node(node.child))
        joiner = sql.SQL(" AND ") if isinstance(node, And) else sql.SQL(" OR ")
        return sql.SQL("({})").format(joiner.join(self.node(c) for c in node.children))

    def tsquery(self, text: Text) -> sql.Composable:
        """Matches the message (english: stemmed) or a metadata value (simple: as is)."""
        if text.phrase:
            value = self.param(text.text)
            fn = sql.SQL("phraseto_tsquery")
        elif text.prefix:
            # The parser allows only word characters before the '*', so the tsquery
            # syntax cannot be escaped from.
            value = self.param(f"{text.text}:*")
            fn = sql.SQL("to_tsquery")
        else:
            value = self.param(text.text)
            fn = sql.SQL("plainto_tsquery")
        return sql.SQL(
            "({fn}('english'::regconfig, {v}) || {fn}('simple'::regconfig, {v}))"
        ).format(fn=fn, v=value)

    def match(self, node: Match) -> sql.Composable:
        path = node.metadata_path
        if path is not None:
            return self.metadata(path, node)
        if node.field in _MATCH_COLUMNS:
            column = self.col(_MATCH_COLUMNS[node.field])
            if node.prefix:
                # ^@ (starts_with) is leakproof, so it stays an index condition under RLS.
                return sql.SQL("{} ^@ {}::text").format(column, self.param(node.value))
            return sql.SQL("{} = {}::text").format(column, self.param(node.value))
        if node.field == "severity":
            return sql.SQL("{} = {}::severity").format(self.col("severity"), self.param(node.value))
        if node.field == "ip_address":
            return sql.SQL("{} <<= {}::inet").format(self.col("ip_address"), self.param(node.value))
        if node.field == "id":
            return sql.SQL("{} = {}::uuid").format(self.col("id"), self.param(node.value))
        raise ValueError(f"cannot compile a match on {node.field}")  # the parser forbids it

    def compare(self, node: Compare) -> sql.Composable:
        op = _SQL_OP[node.op]
        path = node.metadata_path
        if path is not None:
            return self.metadata(path, node)
        if node.field == "timestamp":
            return sql.SQL("{} {} {}").format(self.col("timestamp"), op, self.param(node.value))
        if node.field == "severity":
            return sql.SQL("{} {} {}::severity").format(
                self.col("severity"), op, self.param(node.value)
            )
        raise ValueError(f"cannot compare {node.field}")  # the parser forbids it

    def metadata(self, path: Sequence[str], node: Match | Compare) -> sql.Composable:
        """A JSON path test: lax mode, so arrays along the path match any element.

        Keys are restricted by the parser to ``[A-Za-z0-9_-]``, so quoting them in the
        path cannot be escaped from; the value travels as a jsonpath variable.
        """
        steps = "".join(f'."{key}"' for key in path)
        variables: dict[str, Any]
        if isinstance(node, Compare):
            predicate = f"@ {_JSONPATH_OP[node.op]} $n"
            variables = {"n": node.value}
        elif node.prefix:
            predicate = "@ starts with $s"
            variables = {"s": node.value}
        else:
            tests = ["@ == $s"]
            variables = {"s": node.value}
            number = _as_number(node.value)
            if number is not None:
                tests.append("@ == $n")
                variables["n"] = number
            if node.value in ("true", "false"):
                tests.append("@ == $b")
                variables["b"] = node.value == "true"
            predicate = " || ".join(tests)
        return sql.SQL("jsonb_path_exists({}, {}::jsonpath, {})").format(
            self.col("metadata"),
            self.param(f"${steps} ? ({predicate})"),
            self.param(Jsonb(variables)),
        )


def _as_number(value: str) -> int | float | None:
    """The JSON number *value* spells, if it spells one."""
    if _INTEGER.fullmatch(value):
        return int(value)
    if _NUMBER.fullmatch(value):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def text_terms(node: Node | None) -> list[Text]:
    """The full-text terms every match must satisfy (top-level positive conjuncts)."""
    if isinstance(node, Text):
        return [node]
    if isinstance(node, And):
        return [c for c in node.children if isinstance(c, Text)]
    return []


def _rest_of_tree(node: Node | None) -> Node | None:
    """The tree without its top-level text conjuncts."""
    if isinstance(node, Text):
        return None
    if isinstance(node, And):
        rest = [c for c in node.children if not isinstance(c, Text)]
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else And(tuple(rest))
    return node


def where_all(conditions: Sequence[sql.Composable]) -> sql.Composable:
    return sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true")


def _order_by(alias: str, order: Order) -> sql.Composable:
    direction = sql.SQL("DESC" if order == "desc" else "ASC")
    return sql.SQL("{ts} {d}, {id} {d}").format(
        ts=sql.Identifier(alias, "timestamp"), id=sql.Identifier(alias, "id"), d=direction
    )


# Event rows are read as tuples: seq, then the Event fields in declaration order, so
# building the domain object is one positional call. Extra columns come after these.
_EVENT_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Event))
_READ_COLUMNS: Final = ("seq", *_EVENT_FIELDS)
_N: Final = len(_READ_COLUMNS)
_TS: Final = _READ_COLUMNS.index("timestamp")
_ID: Final = _READ_COLUMNS.index("id")
Row = tuple[Any, ...]


def _columns(alias: str) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(alias, c) for c in _READ_COLUMNS)


@dataclass(frozen=True, slots=True)
class Projection:
    """What a page query selects for each row; *ts* and *id* index its keyset position."""

    columns: Callable[[str], sql.Composable]
    width: int
    ts: int
    id: int


EVENT_ROWS: Final = Projection(_columns, _N, _TS, _ID)


# Export lines encoded by PostgreSQL: the same values and spellings as
# ``search.export`` produces from domain objects (times as Python's isoformat in UTC with
# "Z", IP addresses as Python spells them, the formula neutralisation, CSV quoting), one
# text value per row, so a million-row export costs PostgreSQL time, not Python objects.

_TS_TEXT: Final = """(to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
    || CASE WHEN mod(extract(microseconds FROM {c})::bigint, 1000000) <> 0
            THEN to_char({c} AT TIME ZONE 'UTC', '.US') ELSE '' END || 'Z')"""
# IPv6 spellings differ in one reserved range: PostgreSQL writes ::/96 (IPv4-compatible)
# addresses with a dotted quad, Python (and so ``canonical_ip``, which the leaf hash and the
# API use) in hex. IPv4-mapped addresses are dotted on both sides (``canonical_ip`` spells
# them so on every Python version).
_HEX_TAIL: Final = """to_hex((({c} - {net}::inet) >> 16)::int) || ':'
                      || to_hex((({c} - {net}::inet) & 65535)::int)"""
_IP_TEXT: Final = (
    "CASE WHEN family({c}) = 6 AND {c} << '::/96'::inet AND {c} - '::'::inet >= 65536"
    " THEN '::' || " + _HEX_TAIL.replace("{net}", "'::'") + " ELSE host({c}) END"
)
_CSV_QUOTE: Final = """CASE WHEN {v} IS NULL THEN ''
        WHEN {v} ~ '[",\\r\\n]' THEN '"' || replace({v}, '"', '""') || '"'
        ELSE {v} END"""
_NEUTRALISE: Final = (
    "(CASE WHEN left({c}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) "
    "THEN chr(39) || {c} ELSE {c} END)"
)


def _ts_text(col: sql.Composable) -> sql.Composable:
    return sql.SQL(_TS_TEXT).format(c=col)


def _ip_text(col: sql.Composable) -> sql.Composable:
    return sql.SQL(_IP_TEXT).format(c=col)


def _csv_quote(value: sql.Composable) -> sql.Composable:
    return sql.SQL(_CSV_QUOTE).format(v=value)


def _csv_text(col: sql.Composable) -> sql.Composable:
    return _csv_quote(sql.SQL(_NEUTRALISE).format(c=col))


def _line(alias: str, fmt: str) -> sql.Composable:
    def c(name: str) -> sql.Composable:
        return sql.Identifier(alias, name)

    def cast(name: str) -> sql.Composable:
        return sql.SQL("{}::text").format(c(name))

    def blank(value: sql.Composable) -> sql.Composable:
        return sql.SQL("coalesce({}, '')").format(value)

    if fmt == "csv":
        cells = [
            cast("id"), c("tenant_id"), cast("seq"), _ts_text(c("timestamp")),
            _ts_text(c("received_at")), _csv_text(c("user_id")), blank(c("actor_type")),
            _csv_text(c("session_id")), c("action"), _csv_text(c("resource_type")),
            _csv_text(c("resource_id")), blank(_ip_text(c("ip_address"))),
            _csv_text(c("user_agent")), cast("severity"), blank(c("outcome")),
            _csv_text(c("message")), _csv_text(c("request_id")),
            _csv_quote(sql.SQL("to_jsonb({})::text").format(c("changed_fields"))),
            _csv_quote(cast("metadata")), _csv_quote(cast("before")),
            _csv_quote(cast("after")), sql.SQL("encode({}, 'hex')").format(c("leaf_hash")),
        ]  # fmt: skip
        return sql.SQL("concat_ws(',', {})").format(sql.SQL(", ").join(cells))
    pairs: list[tuple[str, sql.Composable]] = [
        ("id", c("id")), ("tenant_id", c("tenant_id")), ("seq", c("seq")),
        ("timestamp", _ts_text(c("timestamp"))), ("received_at", _ts_text(c("received_at"))),
        ("user_id", c("user_id")), ("actor_type", c("actor_type")),
        ("session_id", c("session_id")), ("action", c("action")),
        ("resource_type", c("resource_type")), ("resource_id", c("resource_id")),
        ("ip_address", _ip_text(c("ip_address"))), ("user_agent", c("user_agent")),
        ("before", c("before")), ("after", c("after")),
        ("changed_fields", c("changed_fields")), ("metadata", c("metadata")),
        ("severity", c("severity")), ("message", c("message")),
        ("request_id", c("request_id")), ("outcome", c("outcome")),
        ("leaf_hash", sql.SQL("encode({}, 'hex')").format(c("leaf_hash"))),
    ]  # fmt: skip
    args = sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(k), v) for k, v in pairs)
    return sql.SQL("json_build_object({})::text").format(args)


def line_projection(fmt: str) -> Projection:
    """One encoded export line per row (``fmt``: csv, json or ndjson), then the position."""

    def columns(alias: str) -> sql.Composable:
        return sql.SQL("{}, {}, {}").format(
            _line(alias, fmt), sql.Identifier(alias, "timestamp"), sql.Identifier(alias, "id")
        )

    return Projection(columns, 3, 1, 2)


# ---------------------------------------------------------------------------------------
# Reading event rows fast
#
# Exports move tens of thousands of rows a second through here, so the two slowest
# loaders are replaced for these statements only (cursor-level adapters): jsonb is parsed
# with orjson, and inet is returned as text instead of being parsed into an ``ipaddress``
# object only to be turned back into text.


class _InetText(Loader):
    def load(self, data: Buffer) -> str:
        text = bytes(data).decode()
        # PostgreSQL writes IPv4 exactly as Python does; IPv6 goes through Python's
        # spelling so every read path agrees with the one the leaf hash used.
        return (canonical_ip(text) or text) if ":" in text else text


def _json_loads(data: str | bytes) -> Any:
    return orjson.loads(data)


async def _fetch_events(
    conn: Connection, statement: sql.Composed, params: dict[str, Any]
) -> list[Row]:
    cur = conn.cursor(row_factory=tuple_row)
    cur.adapters.register_loader("inet", _InetText)
    set_json_loads(_json_loads, cur)
    await cur.execute(statement, params)
    return await cur.fetchall()


def _stored(row: Row) -> StoredEvent:
    return StoredEvent(event=Event(*row[1:_N]), seq=row[0])


# ---------------------------------------------------------------------------------------
# Paging


@dataclass(frozen=True, slots=True)
class SearchTuning:
    """Knobs of the full-text plan; defaults measured in docs/benchmarks/search.md."""

    probe_rows: int = 2000
    probe_max_rows: int = 10_000
    exact_total_limit: int = 10_000


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
    rows = await _rows(conn, tenant, query, page, watermark, tuning, EVENT_ROWS)
    items = [_stored(r) for r in rows[: page.limit]]
    more = len(rows) > page.limit
    last = items[-1].event if items else None
    nxt = Position(last.timestamp, last.id) if more and last is not None else None
    total = None
    if page.include_total:
        total = await count_matches(conn, tenant, query, watermark, limit=tuning.exact_total_limit)
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
    rows = await _rows(conn, tenant, query, page, watermark, tuning, line_projection(fmt))
    more = len(rows) > page.limit
    last = rows[page.limit - 1] if more else None
    lines = [r[0] for r in rows[: page.limit]]
    return lines, (Position(last[1], last[2]) if last is not None else None)


async def _rows(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    page: PageRequest,
    watermark: int,
    tuning: SearchTuning,
    projection: Projection,
) -> list[Row]:
    """Up to ``page.limit + 1`` rows (one more tells whether a next page exists)."""
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
        cols=projection.columns("e"), where=where_all(where), order=_order_by("e", page.order),
        limit=c.param(want),
    )  # fmt: skip
    return await _fetch_events(conn, statement, c.params)


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
    inner = _conditions(c, tenant, query, watermark, after, order, tree=_rest_of_tree(query.q))
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
        outer_cols=projection.columns("c"), text_match=text_match, inner_cols=_columns("e"),
        inner_order=_order_by("e", order), where=where_all(inner), budget=c.param(budget),
        outer_order=_order_by("c", order), want=c.param(want),
    )  # fmt: skip
    probed = await _fetch_events(conn, statement, c.params)
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


def _text_only(query: SearchQuery) -> bool:
    """Nothing but full-text terms and the time range restricts this query."""
    return query.filters.only_time and query.only_user is None and _rest_of_tree(query.q) is None


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
    lim = want if _text_only(query) else None
    matches = _text_matches(c, query, order, after, terms, watermark, lim)
    statement = sql.SQL("SELECT {cols} FROM {rows} ORDER BY {order} LIMIT {limit}").format(
        cols=projection.columns("e"), rows=_probe_keys(matches, where, _columns("e")),
        order=_order_by("e", order), limit=c.param(want),
    )  # fmt: skip
    return await _fetch_events(conn, statement, c.params)


async def count_matches(
    conn: Connection, tenant: TenantId, query: SearchQuery, watermark: int, *, limit: int | None
) -> Total:
    """How many events match: exact up to *limit*, else ``Total(limit, exact=False)``."""
    c = Compiler("e")
    where = _conditions(c, tenant, query, watermark, None, "desc", tree=query.q)
    terms = text_terms(query.q)
    if terms:
        lim = limit + 1 if limit is not None and _text_only(query) else None
        matches = _text_matches(c, query, "desc", None, terms, watermark, lim)
        inner = sql.SQL("SELECT 1 FROM {}").format(_probe_keys(matches, where, sql.SQL("1")))
    else:
        inner = sql.SQL("SELECT 1 FROM events e WHERE {}").format(where_all(where))
    if limit is not None:
        inner = sql.SQL("{} LIMIT {}").format(inner, c.param(limit + 1))
    cur = await conn.execute(sql.SQL("SELECT count(*) AS n FROM ({}) x").format(inner), c.params)
    row = await cur.fetchone()
    n = 0 if row is None else int(row["n"])
    if limit is not None and n > limit:
        return Total(limit, exact=False)
    return Total(n, exact=True)
