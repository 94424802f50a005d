"""The query language evaluated in Python, one event at a time: for live streams.

Searches compile the AST to SQL (``storage.search.compiler``); a stream cannot ask the
database once per subscriber and event, so it evaluates the same :class:`SearchQuery` here
against each new event. Both must answer alike: they are tested against each other on the
tenant-overlap corpus (``tests/integration/test_repository_tenant_wall.py``), whose
reference oracle is this evaluator with a word-based text test.

Why NULLs need no special care: the compiler wraps every ``NOT`` in ``coalesce(..., false)``
and the rest of a tree is AND/OR, which are monotone, so SQL's unknown decides exactly as
false does here.

Full-text terms are the one thing Python cannot decide the way PostgreSQL does (its parser,
English stemming and stop words): :func:`matches` takes a *text* function for them. The
stream asks PostgreSQL, in the same statement that reads the new rows, whether each row's
``search_vector`` matches each distinct term its subscribers use, so the answer is
PostgreSQL's own.
"""

from __future__ import annotations

import ipaddress
import math
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from auditline.domain.access import ACCESS_RESOURCE
from auditline.domain.events import SEVERITIES, Event
from auditline.search.model import SearchQuery
from auditline.search.query import And, Compare, Match, Node, Not, Or, Text

TextTest = Callable[[Text], bool]
"""Whether the event at hand matches one full-text term (see the module's docstring)."""

_RANK: Final[dict[str, int]] = {s: i for i, s in enumerate(SEVERITIES)}
_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}  # fmt: skip
_INTEGER: Final = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_KEYWORD_COLUMNS: Final = frozenset(
    {"user_id", "session_id", "action", "resource_type", "resource_id", "request_id",
     "outcome", "actor_type"}
)  # fmt: skip


def json_number(value: str) -> int | float | None:
    """The JSON number *value* spells, if it spells one (``metadata.k:120`` also matches the
    number 120). The SQL compiler binds the same number."""
    if _INTEGER.fullmatch(value):
        return int(value)
    if _NUMBER.fullmatch(value):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def text_terms(query: SearchQuery) -> set[Text]:
    """The distinct full-text terms of *query* (what a *text* function will be asked)."""
    if query.q is None:
        return set()
    return {n for n in _walk(query.q) if isinstance(n, Text)}


def matches(event: Event, query: SearchQuery, text: TextTest) -> bool:
    """Whether *event* answers *query*: its filters, ``q``, the ``user`` role's restriction
    and the exclusion of access records unless the query includes them."""
    if not query.access_included and event.resource_type == ACCESS_RESOURCE:
        return False
    if query.only_user is not None and event.user_id != query.only_user:
        return False
    f = query.filters
    if f.start is not None and event.timestamp < f.start:
        return False
    if f.end is not None and event.timestamp >= f.end:
        return False
    if f.actions and event.action not in f.actions:
        return False
    if f.severities and event.severity not in f.severities:
        return False
    if f.min_severity is not None and _RANK[event.severity] < _RANK[f.min_severity]:
        return False
    if f.ip_network is not None and not _in_network(event.ip_address, f.ip_network):
        return False
    for name in ("user_id", "session_id", "resource_type", "resource_id", "request_id",
                 "outcome", "actor_type"):  # fmt: skip
        wanted = getattr(f, name)
        if wanted is not None and getattr(event, name) != wanted:
            return False
    return query.q is None or _node(event, query.q, text)


def _walk(node: Node) -> list[Node]:
    out: list[Node] = [node]
    if isinstance(node, Not):
        out += _walk(node.child)
    elif isinstance(node, And | Or):
        for child in node.children:
            out += _walk(child)
    return out


def _node(event: Event, node: Node, text: TextTest) -> bool:
    # NOT over a missing value is true, as the compiler's NOT coalesce(..., false) is.
    if isinstance(node, Text):
        return text(node)
    if isinstance(node, Match):
        return _match(event, node)
    if isinstance(node, Compare):
        return _compare(event, node)
    if isinstance(node, Not):
        return not _node(event, node.child, text)
    if isinstance(node, And):
        return all(_node(event, c, text) for c in node.children)
    return any(_node(event, c, text) for c in node.children)


def _in_network(address: str | None, network: str) -> bool:
    if address is None:
        return False
    ip, net = ipaddress.ip_address(address), ipaddress.ip_network(network)
    return ip.version == net.version and ip in net


def _match(event: Event, node: Match) -> bool:
    path = node.metadata_path
    if path is not None:
        values = _at_path(event.metadata, path)
        if node.prefix:
            return any(isinstance(v, str) and v.startswith(node.value) for v in values)
        return any(_equals(v, node.value) for v in values)
    if node.field == "ip_address":
        return _in_network(event.ip_address, node.value)
    if node.field == "id":
        return str(event.id) == node.value
    actual = getattr(event, node.field) if node.field in _KEYWORD_COLUMNS | {"severity"} else None
    if actual is None:
        return False
    return str(actual).startswith(node.value) if node.prefix else actual == node.value


def _compare(event: Event, node: Compare) -> bool:
    op = _OPS[node.op]
    path = node.metadata_path
    if path is not None:
        return any(_is_number(v) and op(v, node.value) for v in _at_path(event.metadata, path))
    if node.field == "timestamp":
        return op(event.timestamp, node.value)
    return op(_RANK[event.severity], _RANK[str(node.value)])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _at_path(document: Any, path: Sequence[str]) -> list[Any]:
    """The values at *path* as a lax SQL/JSON path finds them: an array met along the path
    or at its end is unwrapped one level."""
    found = [document]
    for key in path:
        found = [
            x[key] for item in found for x in _unwrap(item) if isinstance(x, dict) and key in x
        ]
    return [x for item in found for x in _unwrap(item)]


def _unwrap(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _equals(value: Any, wanted: str) -> bool:
    """Equality with the string, the JSON number it spells, or the boolean it names."""
    if isinstance(value, bool):
        return wanted in ("true", "false") and value == (wanted == "true")
    if isinstance(value, str):
        return value == wanted
    if _is_number(value):
        number = json_number(wanted)
        return number is not None and value == number
    return False
