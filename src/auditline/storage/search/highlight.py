"""Highlights: the matched words of a page's messages and metadata values, marked.

Computed for the page's events only, from the values the page already holds (passed in as
arrays: no table is read, so nothing here can reach another tenant's rows), with
PostgreSQL's own parser and dictionaries (``ts_headline``), so what is marked is what the
full-text search matched: the message with the English configuration, metadata values with
the simple one, as the search vector is built (migration 0001).

Every positive full-text term of ``q`` is marked wherever it matches (terms under ``NOT``
are not: they matched nothing on these events). ``ts_headline`` copies the text as it is,
so it is asked for two private-use characters as markers (removed from the input first);
the result is HTML-escaped and only then are the markers turned into ``<mark>`` and
``</mark>``: the answer is safe to insert into a page as HTML whatever the event holds.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from psycopg import sql

from auditline.domain.events import StoredEvent
from auditline.search.model import Highlight
from auditline.search.query import And, Node, Or, Text
from auditline.storage.database import Connection
from auditline.storage.search.compiler import Compiler

_START: Final = "\ue000"
_STOP: Final = "\ue001"
_OPTIONS: Final = f"StartSel={_START}, StopSel={_STOP}, HighlightAll=true"
_MAX_VALUES: Final = 1000
"""Metadata values considered per page (the first ones, in document order)."""


def positive_terms(node: Node | None) -> list[Text]:
    """The full-text terms of *node* not under a ``NOT``."""
    if isinstance(node, Text):
        return [node]
    if isinstance(node, And | Or):
        return [t for child in node.children for t in positive_terms(child)]
    return []  # a NOT, a field condition, or nothing


@dataclass(frozen=True, slots=True)
class _Leaf:
    event: int
    path: tuple[str, ...]
    text: str


def _leaves(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """String and number values of a JSON document (what the search vector holds)."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, str(key)))
    elif isinstance(value, list):
        for child in value:
            yield from _leaves(child, path)
    elif isinstance(value, str):
        yield path, value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path, str(value)


def _marked(headline: str) -> str:
    return html.escape(headline, quote=True).replace(_START, "<mark>").replace(_STOP, "</mark>")


async def highlight(
    conn: Connection, node: Node | None, events: Sequence[StoredEvent]
) -> list[Highlight | None]:
    """One entry per event: its marked message and matched metadata values, or None when
    no term matched in either (or *node* holds no positive full-text term)."""
    terms = positive_terms(node)
    if not terms or not events:
        return [None] * len(events)
    leaves = [
        _Leaf(i, path, text)
        for i, stored in enumerate(events)
        for path, text in _leaves(stored.event.metadata or {}, ())
    ][:_MAX_VALUES]
    c = Compiler("e")
    q = sql.SQL(" || ").join(c.tsquery(t) for t in terms)
    clean = sql.SQL("translate(u.t, {}, '')").format(c.param(_START + _STOP))
    statement = sql.SQL(
        """WITH q AS (SELECT {q} AS q)
           SELECT 'm' AS kind, u.i, ts_headline('english'::regconfig, {clean}, q.q, {opts}) AS h
             FROM q, unnest({messages}::text[]) WITH ORDINALITY AS u(t, i)
            WHERE to_tsvector('english'::regconfig, coalesce(u.t, '')) @@ q.q
           UNION ALL
           SELECT 'v', u.i, ts_headline('simple'::regconfig, {clean}, q.q, {opts})
             FROM q, unnest({values}::text[]) WITH ORDINALITY AS u(t, i)
            WHERE to_tsvector('simple'::regconfig, u.t) @@ q.q
            ORDER BY 1, 2"""
    ).format(
        q=q, clean=clean, opts=c.param(_OPTIONS),
        messages=c.param([s.event.message for s in events]),
        values=c.param([leaf.text for leaf in leaves]),
    )  # fmt: skip
    cur = await conn.execute(statement, c.params)
    messages: dict[int, str] = {}
    values: dict[int, list[tuple[tuple[str, ...], str]]] = {}
    for row in await cur.fetchall():
        i = int(row["i"]) - 1
        if row["kind"] == "m":
            messages[i] = _marked(row["h"])
        else:
            leaf = leaves[i]
            values.setdefault(leaf.event, []).append((leaf.path, _marked(row["h"])))
    out: list[Highlight | None] = []
    for i in range(len(events)):
        if i in messages or i in values:
            out.append(Highlight(message=messages.get(i), metadata=values.get(i, [])))
        else:
            out.append(None)
    return out
