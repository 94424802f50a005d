"""The query compiler: filters and query-language ASTs to SQL conditions over ``events``.

Everything is composed with :mod:`psycopg.sql`; user values only ever travel as bound
parameters (named placeholders), never inside the SQL text. Every statement starts from
:meth:`Compiler.base`, which carries the explicit tenant condition: the first of the two
walls between tenants (row-level security is the second, and an OpenSearch backend has
only the first; ``tests/integration/test_search_backend_contract.py`` proves it alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from psycopg import sql
from psycopg.types.json import Jsonb

from auditline.domain.access import ACCESS_RESOURCE
from auditline.domain.tenants import TenantId
from auditline.search.evaluate import json_number
from auditline.search.model import Order, Position, SearchFilters, SearchQuery
from auditline.search.query import And, Compare, Match, Node, Not, Text

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

    def __init__(self, alias: str = "e", *, configs: Sequence[str] = ("english", "simple")) -> None:
        """*configs*: the text search configurations a full-text term is asked in (ORed);
        only the planner estimate asks one at a time (``pages.planner_estimate``)."""
        self.alias = alias
        self.params: dict[str, Any] = {}
        self.configs = tuple(configs)

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
        """Tenant, filters, the role restriction and, unless the query includes them, the
        exclusion of access records (not the ``q`` tree)."""
        out: list[sql.Composable] = [
            sql.SQL("{} = {}::text").format(self.col("tenant_id"), self.param(tenant))
        ]
        out.extend(self.filters(query.filters))
        if not query.access_included:
            out.append(
                sql.SQL("{} IS DISTINCT FROM {}::text").format(
                    self.col("resource_type"), self.param(ACCESS_RESOURCE)
                )
            )
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
        asked = sql.SQL(" || ").join(
            sql.SQL("{fn}({cfg}::regconfig, {v})").format(fn=fn, cfg=sql.Literal(cfg), v=value)
            for cfg in self.configs
        )
        return sql.SQL("({})").format(asked)

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
            number = json_number(node.value)
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


def text_terms(node: Node | None) -> list[Text]:
    """The full-text terms every match must satisfy (top-level positive conjuncts)."""
    if isinstance(node, Text):
        return [node]
    if isinstance(node, And):
        return [c for c in node.children if isinstance(c, Text)]
    return []


def rest_of_tree(node: Node | None) -> Node | None:
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


def order_by(alias: str, order: Order) -> sql.Composable:
    direction = sql.SQL("DESC" if order == "desc" else "ASC")
    return sql.SQL("{ts} {d}, {id} {d}").format(
        ts=sql.Identifier(alias, "timestamp"), id=sql.Identifier(alias, "id"), d=direction
    )
