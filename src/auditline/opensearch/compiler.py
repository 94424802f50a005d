"""Filters and query-language ASTs to the OpenSearch query DSL.

The same language, the same answers as ``storage.search.compiler`` (the differential and
contract tests hold the two side by side). Every query is built by :func:`search_filter`,
which puts the tenant's ``term`` first: callers hand in a tenant and a query, never a DSL
fragment, so no search reaches the shared indices without the tenant filter — the only
wall between tenants here, as OpenSearch has no row-level security
(``tests/integration/test_search_backend_contract.py`` proves it, as it proves the
PostgreSQL condition alone). Everything runs in filter context: no scoring, the order is
always (``ts_us``, ``id``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from auditline.domain.access import ACCESS_RESOURCE
from auditline.domain.tenants import TenantId
from auditline.opensearch.documents import ENGLISH, SEPARATOR, SEVERITY_RANK, SIMPLE, micros
from auditline.search.evaluate import json_number
from auditline.search.model import Order, Position, SearchFilters, SearchQuery
from auditline.search.query import And, Compare, Match, Node, Not, Text

Query = dict[str, Any]

_RANGE_OP: Final = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
_KEYWORDS: Final = frozenset(
    {"user_id", "session_id", "action", "resource_type", "resource_id", "request_id",
     "outcome", "actor_type"}
)  # fmt: skip


def term(field: str, value: Any) -> Query:
    return {"term": {field: value}}


def _all(clauses: list[Query]) -> Query:
    return clauses[0] if len(clauses) == 1 else {"bool": {"filter": clauses}}


def _any(clauses: list[Query]) -> Query:
    return (
        clauses[0]
        if len(clauses) == 1
        else {"bool": {"should": clauses, "minimum_should_match": 1}}
    )


def filters(f: SearchFilters) -> list[Query]:
    out: list[Query] = []
    if f.start is not None or f.end is not None:
        bounds: dict[str, int] = {}
        if f.start is not None:
            bounds["gte"] = micros(f.start)
        if f.end is not None:
            bounds["lt"] = micros(f.end)
        out.append({"range": {"ts_us": bounds}})
    for field in ("user_id", "session_id", "resource_type", "resource_id", "request_id",
                  "outcome", "actor_type"):  # fmt: skip
        value = getattr(f, field)
        if value is not None:
            out.append(term(field, value))
    if f.actions:
        out.append({"terms": {"action": list(f.actions)}})
    if f.severities:
        out.append({"terms": {"severity": list(f.severities)}})
    if f.min_severity is not None:
        out.append({"range": {"severity_rank": {"gte": SEVERITY_RANK[f.min_severity]}}})
    if f.ip_network is not None:
        out.append(term("ip_address", f.ip_network))  # a CIDR term matches the network
    return out


def search_filter(
    tenant: TenantId,
    query: SearchQuery,
    *,
    watermark: int | None = None,
    tree: bool = True,
) -> Query:
    """The whole condition of a search of *tenant*: the tenant term (always, first), the
    filters, the role restriction, the exclusion of access records unless included, the
    snapshot bound ``seq < watermark`` and, with *tree*, the compiled ``q``."""
    must: list[Query] = [term("tenant_id", tenant), *filters(query.filters)]
    must_not: list[Query] = []
    if not query.access_included:
        must_not.append(term("resource_type", ACCESS_RESOURCE))
    if query.only_user is not None:
        must.append(term("user_id", query.only_user))
    if watermark is not None:
        must.append({"range": {"seq": {"lt": watermark}}})
    if tree and query.q is not None:
        must.append(node(query.q))
    condition: dict[str, Any] = {"filter": must}
    if must_not:
        condition["must_not"] = must_not
    return {"bool": condition}


def sort(order: Order) -> list[Query]:
    """(timestamp, id) in *order*: microseconds exactly, then the id as text (canonical
    lower-case UUIDs sort as their bytes do, as PostgreSQL compares ``uuid``)."""
    return [{"ts_us": {"order": order}}, {"id": {"order": order}}]


def search_after(position: Position) -> list[Any]:
    return [micros(position.timestamp), str(position.id)]


# ---------------------------------------------------------------------------------------
# The query language


def node(n: Node) -> Query:
    if isinstance(n, Text):
        return text(n)
    if isinstance(n, Match):
        return match(n)
    if isinstance(n, Compare):
        return compare(n)
    if isinstance(n, Not):
        # A missing field does not match its term, so NOT over it is true: the same
        # two-valued answer as PostgreSQL's NOT coalesce(..., false).
        return {"bool": {"must_not": [node(n.child)]}}
    if isinstance(n, And):
        return _all([node(c) for c in n.children])
    return _any([node(c) for c in n.children])


def text(n: Text) -> Query:
    """PostgreSQL ORs an english and a simple tsquery over one vector holding the message
    (english) and metadata values (simple): so each of ``msg`` and ``meta`` is asked with
    each analyser, and any of the four may match."""
    if n.prefix:
        word = n.text.lower()
        return _any([{"prefix": {field: word}} for field in ("msg", "meta")])
    kind = "match_phrase" if n.phrase else "match"
    clauses: list[Query] = []
    for field in ("msg", "meta"):
        for analyzer in (ENGLISH, SIMPLE):
            body: dict[str, Any] = {"query": n.text, "analyzer": analyzer}
            if not n.phrase:
                body["operator"] = "and"
            clauses.append({kind: {field: body}})
    return _any(clauses)


def match(n: Match) -> Query:
    path = n.metadata_path
    if path is not None:
        return _metadata_match(".".join(path), n)
    if n.field in _KEYWORDS:
        return {"prefix": {n.field: n.value}} if n.prefix else term(n.field, n.value)
    if n.field in ("severity", "ip_address", "id"):
        return term(n.field, n.value)
    raise ValueError(f"cannot compile a match on {n.field}")  # the parser forbids it


def _metadata_match(key: str, n: Match) -> Query:
    if n.prefix:
        return {"prefix": {"meta_str": f"{key}{SEPARATOR}{n.value}"}}
    clauses = [term("meta_str", f"{key}{SEPARATOR}{n.value}")]
    number = json_number(n.value)
    if number is not None:
        clauses.append(_number(key, {"term": {"meta_num.v": float(number)}}))
    if n.value in ("true", "false"):
        clauses.append(term("meta_bool", f"{key}{SEPARATOR}{n.value}"))
    return _any(clauses)


def _number(key: str, test: Query) -> Query:
    """A numeric leaf at *key* passing *test* (key and value of one pair: nested)."""
    return {
        "nested": {
            "path": "meta_num",
            "query": {"bool": {"filter": [term("meta_num.k", key), test]}},
        }
    }


def compare(n: Compare) -> Query:
    op = _RANGE_OP[n.op]
    path = n.metadata_path
    value = n.value
    if path is not None and isinstance(value, float):
        return _number(".".join(path), {"range": {"meta_num.v": {op: value}}})
    if n.field == "timestamp" and isinstance(value, datetime):
        return {"range": {"ts_us": {op: micros(value)}}}
    if n.field == "severity" and isinstance(value, str):
        return {"range": {"severity_rank": {op: SEVERITY_RANK[value]}}}
    raise ValueError(f"cannot compare {n.field}")  # the parser forbids it
