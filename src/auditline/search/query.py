"""The search query language: a typed AST and its parser. No I/O, no SQL.

A query string is parsed once into the AST below; storage compiles the AST to SQL and the
OpenSearch backend will compile the same AST to its DSL, so both backends answer the same
language the same way. The grammar (documented for users in ``docs/search.md``)::

    query    := or_expr?
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := unary (["AND"] unary)*          -- juxtaposition means AND
    unary    := ("NOT" | "-") unary | primary
    primary  := "(" or_expr ")" | field_expr | PHRASE | WORD
    field_expr := FIELD (":" value | (">" | ">=" | "<" | "<=") value)
    value    := PHRASE | RAW ["*"]

``AND``, ``OR`` and ``NOT`` are operators only in upper case; quote them to search for the
words. ``NOT`` binds tighter than ``AND``, which binds tighter than ``OR``.

Every error is a :class:`ParseError` carrying the 0-based character offset where the
problem is; anything else escaping :func:`parse` is a bug (the property tests check this).
Values are checked here (severity names, timestamps, IP networks, UUIDs, enumerations) so
a bad value is reported at its position rather than failing later in a backend.
"""

from __future__ import annotations

import ipaddress
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, Literal, TypeAlias, get_args

from auditline.domain.events import SEVERITIES
from auditline.domain.validation import RFC3339_PATTERN

MAX_QUERY_CHARS: Final = 2000
MAX_TERMS: Final = 64
MAX_DEPTH: Final = 16

CompareOp = Literal[">", ">=", "<", "<="]
COMPARE_OPS: Final[tuple[CompareOp, ...]] = get_args(CompareOp)

# Fields matched exactly (``field:value``) or by prefix (``field:val*``).
KEYWORD_FIELDS: Final = frozenset(
    {"user_id", "session_id", "action", "resource_type", "resource_id", "request_id"}
)
ENUM_FIELDS: Final[dict[str, frozenset[str]]] = {
    "outcome": frozenset({"success", "failure"}),
    "actor_type": frozenset({"user", "service", "system"}),
}
OTHER_FIELDS: Final = frozenset({"id", "severity", "ip_address", "timestamp"})
FIELDS: Final = KEYWORD_FIELDS | ENUM_FIELDS.keys() | OTHER_FIELDS
METADATA_PREFIX: Final = "metadata."

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*")
_METADATA_KEY = re.compile(r"[A-Za-z0-9_-]+")
_PREFIX_WORD = re.compile(r"\w+")
_WORD_END = frozenset('()"')
_VALUE_END = frozenset('()"')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_RFC3339 = re.compile(RFC3339_PATTERN)
_KEYWORDS: Final = frozenset({"AND", "OR", "NOT"})


class ParseError(ValueError):
    """The query is not valid; *position* is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position


# ---------------------------------------------------------------------------------------
# The AST


@dataclass(frozen=True, slots=True)
class Text:
    """Full text over the message and the metadata values.

    A bare word (``prefix`` when it ended in ``*``) or a quoted phrase (words adjacent and
    in order).
    """

    text: str
    phrase: bool = False
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    """``field:value``: equality (or prefix) on one field.

    *field* is a name from :data:`FIELDS` or ``metadata.<key>[.<key>...]``. *value* is
    normalised: upper-case for ``action`` and ``severity``, the network for ``ip_address``
    (``10.0.0.0/8``; a single address becomes ``/32`` or ``/128``), the canonical UUID for
    ``id``.
    """

    field: str
    value: str
    prefix: bool = False

    @property
    def metadata_path(self) -> tuple[str, ...] | None:
        return _metadata_path(self.field)


CompareValue: TypeAlias = "str | float | datetime"


@dataclass(frozen=True, slots=True)
class Compare:
    """``field>value`` and friends: ``timestamp`` (aware datetime), ``severity`` (its name,
    ordered INFO < WARNING < ERROR < CRITICAL) and numeric ``metadata.<path>`` (float)."""

    field: str
    op: CompareOp
    value: str | float | datetime

    @property
    def metadata_path(self) -> tuple[str, ...] | None:
        return _metadata_path(self.field)


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    """Conjunction of at least two children, none of them an ``And``."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Disjunction of at least two children, none of them an ``Or``."""

    children: tuple[Node, ...]


Node: TypeAlias = Text | Match | Compare | Not | And | Or


def _metadata_path(field: str) -> tuple[str, ...] | None:
    if field.startswith(METADATA_PREFIX):
        return tuple(field[len(METADATA_PREFIX) :].split("."))
    return None


def conjunction(nodes: list[Node]) -> Node:
    flat: list[Node] = []
    for node in nodes:
        flat.extend(node.children if isinstance(node, And) else (node,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def disjunction(nodes: list[Node]) -> Node:
    flat: list[Node] = []
    for node in nodes:
        flat.extend(node.children if isinstance(node, Or) else (node,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def walk(node: Node) -> list[Node]:
    """Every node of the tree, depth first, parents before children."""
    out: list[Node] = [node]
    if isinstance(node, Not):
        out.extend(walk(node.child))
    elif isinstance(node, And | Or):
        for child in node.children:
            out.extend(walk(child))
    return out


# ---------------------------------------------------------------------------------------
# Parsing


def parse(query: str) -> Node | None:
    """The AST of *query*, or None when it is empty (only whitespace)."""
    if len(query) > MAX_QUERY_CHARS:
        raise ParseError(f"the query is longer than {MAX_QUERY_CHARS} characters", MAX_QUERY_CHARS)
    return _Parser(query).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.terms = 0
        self.depth = 0

    # -- scanning helpers

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def keyword(self) -> str | None:
        """The operator keyword starting at the current position, if any."""
        for word in _KEYWORDS:
            end = self.pos + len(word)
            if self.text.startswith(word, self.pos) and (
                end == len(self.text) or self.text[end].isspace() or self.text[end] in _WORD_END
            ):
                return word
        return None

    # -- grammar

    def parse(self) -> Node | None:
        self.skip_ws()
        if self.at_end():
            return None
        node = self.or_expr()
        self.skip_ws()
        if not self.at_end():
            # Only a stray ')' can stop the top-level expression early.
            raise ParseError("unexpected ')' without a matching '('", self.pos)
        return node

    def or_expr(self) -> Node:
        nodes = [self.and_expr()]
        while True:
            self.skip_ws()
            if self.keyword() != "OR":
                return disjunction(nodes)
            self.pos += 2
            nodes.append(self.and_expr())

    def and_expr(self) -> Node:
        nodes = [self.unary()]
        while True:
            self.skip_ws()
            if self.at_end() or self.peek() == ")" or self.keyword() == "OR":
                return conjunction(nodes)
            if self.keyword() == "AND":
                self.pos += 3
            nodes.append(self.unary())

    def unary(self) -> Node:
        self.skip_ws()
        start = self.pos
        negate = False
        if self.keyword() == "NOT":
            self.pos += 3
            negate = True
        elif self.peek() == "-":
            nxt = self.text[self.pos + 1 : self.pos + 2]
            if not nxt or nxt.isspace() or nxt == ")":
                raise ParseError("'-' must be followed directly by a term", self.pos)
            self.pos += 1
            negate = True
        if negate:
            self.enter(start)
            child = self.unary()
            self.depth -= 1
            return Not(child)
        return self.primary()

    def enter(self, position: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError(f"the query nests deeper than {MAX_DEPTH} levels", position)

    def count_term(self, position: int) -> None:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise ParseError(f"the query has more than {MAX_TERMS} terms", position)

    def primary(self) -> Node:
        self.skip_ws()
        start = self.pos
        if self.at_end():
            raise ParseError("expected a term, found the end of the query", self.pos)
        char = self.peek()
        if char == "(":
            self.enter(start)
            self.pos += 1
            self.skip_ws()
            if self.peek() == ")":
                raise ParseError("empty parentheses", start)
            node = self.or_expr()
            self.skip_ws()
            if self.peek() != ")":
                raise ParseError("missing ')' for the '(' here", start)
            self.pos += 1
            self.depth -= 1
            return node
        if char == ")":
            raise ParseError("expected a term, found ')'", self.pos)
        keyword = self.keyword()
        if keyword is not None:
            raise ParseError(f"expected a term, found the operator {keyword}", self.pos)
        self.count_term(start)
        if char == '"':
            phrase = self.quoted()
            if not any(c.isalnum() for c in phrase):
                raise ParseError("a phrase needs at least one letter or digit", start)
            return Text(phrase, phrase=True)
        field = _FIELD.match(self.text, self.pos)
        if field is not None:
            after = field.end()
            if self.text[after : after + 1] in (":", "<", ">"):
                return self.field_expr(field.group(), start, after)
        return self.word(start)

    def word(self, start: int) -> Text:
        while not self.at_end():
            char = self.peek()
            if char.isspace() or char in _WORD_END:
                break
            self.pos += 1
        raw = self.text[start : self.pos]
        if raw.endswith("*"):
            stem = raw[:-1]
            if not _PREFIX_WORD.fullmatch(stem):
                raise ParseError(
                    "a prefix search (word*) needs letters, digits or '_' before the '*'", start
                )
            return Text(stem, prefix=True)
        if not any(c.isalnum() for c in raw):
            raise ParseError("a search word needs at least one letter or digit", start)
        return Text(raw)

    def quoted(self) -> str:
        """A double-quoted string at the current position; ``\\"`` and ``\\\\`` escape."""
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while True:
            if self.at_end():
                raise ParseError("missing closing '\"' for the quote here", start)
            char = self.peek()
            if char == "\\":
                nxt = self.text[self.pos + 1 : self.pos + 2]
                if nxt not in ('"', "\\"):
                    raise ParseError('only \\" and \\\\ may follow a backslash', self.pos)
                out.append(nxt)
                self.pos += 2
                continue
            self.pos += 1
            if char == '"':
                return "".join(out)
            out.append(char)

    def field_expr(self, name: str, start: int, after: int) -> Node:
        path = _metadata_path(name)
        if path is not None:
            bad = next((k for k in path if not _METADATA_KEY.fullmatch(k)), None)
            if bad is not None:
                raise ParseError("metadata keys may hold only letters, digits, '_' and '-'", start)
        elif name not in FIELDS:
            raise ParseError(
                f"unknown field '{name}'; known fields: {', '.join(sorted(FIELDS))}, "
                "metadata.<key>; quote the text to search for it",
                start,
            )
        self.pos = after
        op: str
        if self.peek() == ":":
            op = ":"
            self.pos += 1
        elif self.text.startswith((">=", "<="), self.pos):
            op = self.text[self.pos : self.pos + 2]
            self.pos += 2
        else:
            op = self.peek()
            self.pos += 1
        value_at = self.pos
        value, quoted, prefix = self.value()
        if op == ":":
            return _match(name, value, quoted=quoted, prefix=prefix, at=value_at)
        if prefix:
            raise ParseError("a comparison cannot take a prefix value", value_at)
        return _compare(name, op, value, at=value_at)  # type: ignore[arg-type]

    def value(self) -> tuple[str, bool, bool]:
        """(value, quoted, prefix) of a field expression."""
        if self.peek() == '"':
            start = self.pos
            value = self.quoted()
            if not value:
                raise ParseError("empty value", start)
            return value, True, False
        start = self.pos
        while not self.at_end():
            char = self.peek()
            if char.isspace() or char in _VALUE_END:
                break
            self.pos += 1
        raw = self.text[start : self.pos]
        if not raw or raw == "*":
            raise ParseError("expected a value", start)
        if raw.endswith("*"):
            return raw[:-1], False, True
        return raw, False, False


def _match(field: str, value: str, *, quoted: bool, prefix: bool, at: int) -> Match:
    if field.startswith(METADATA_PREFIX) or field in KEYWORD_FIELDS:
        return Match(field, value.upper() if field == "action" else value, prefix=prefix)
    if prefix:
        raise ParseError(f"'{field}' does not take a prefix (value*)", at)
    if field in ENUM_FIELDS:
        allowed = ENUM_FIELDS[field]
        if value not in allowed:
            raise ParseError(f"{field} is one of {', '.join(sorted(allowed))}", at)
        return Match(field, value)
    if field == "severity":
        return Match(field, _severity(value, at))
    if field == "ip_address":
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ParseError("ip_address needs an IP address or a CIDR network", at) from None
        if "%" in value:  # PostgreSQL's cidr cannot hold a zone (fe80::1%eth0)
            raise ParseError("ip_address takes no zone (%...)", at)
        return Match(field, str(network))
    if field == "id":
        try:
            return Match(field, str(uuid.UUID(value)))
        except ValueError:
            raise ParseError("id needs a UUID", at) from None
    raise ParseError(f"'{field}' needs a comparison: {field}>=..., {field}<...", at)


def _compare(field: str, op: CompareOp, value: str, *, at: int) -> Compare:
    if field == "timestamp":
        return Compare(field, op, parse_time(value, at))
    if field == "severity":
        return Compare(field, op, _severity(value, at))
    if field.startswith(METADATA_PREFIX):
        if not _NUMBER.fullmatch(value) or not math.isfinite(number := float(value)):
            raise ParseError("metadata comparisons need a number", at)
        return Compare(field, op, number)
    raise ParseError(f"'{field}' cannot be compared; use {field}:value", at)


def _severity(value: str, at: int) -> str:
    upper = value.upper()
    if upper not in SEVERITIES:
        raise ParseError(f"severity is one of {', '.join(SEVERITIES)}", at)
    return upper


def parse_time(value: str, at: int = 0) -> datetime:
    """An RFC 3339 instant with an offset, or a date (midnight UTC); naive times refused."""
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise ParseError("not a valid date", at) from None
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    if not _RFC3339.fullmatch(value):
        raise ParseError(
            "a time is a date (2026-01-31) or RFC 3339 with an offset (2026-01-31T12:00:00Z)", at
        )
    try:
        return datetime.fromisoformat(value.replace("z", "Z")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ParseError("not a valid time", at) from None


# ---------------------------------------------------------------------------------------
# Printing: the canonical query string of an AST (parse(to_query(n)) == n)


def to_query(node: Node) -> str:
    if isinstance(node, Text):
        if node.phrase:
            return _quote(node.text)
        return node.text + ("*" if node.prefix else "")
    if isinstance(node, Match):
        if node.prefix:
            return f"{node.field}:{node.value}*"
        return f"{node.field}:{_value(node.value)}"
    if isinstance(node, Compare):
        return f"{node.field}{node.op}{_compare_value(node.value)}"
    if isinstance(node, Not):
        child = node.child
        inner = to_query(child)
        return f"NOT ({inner})" if isinstance(child, And | Or) else f"NOT {inner}"
    if isinstance(node, And):
        return " ".join(
            f"({to_query(c)})" if isinstance(c, Or) else to_query(c) for c in node.children
        )
    return " OR ".join(to_query(c) for c in node.children)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(value: str) -> str:
    safe = (
        value and not value.endswith("*") and not any(c.isspace() or c in _VALUE_END for c in value)
    )
    return value if safe else _quote(value)


def _compare_value(value: str | float | datetime) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return value
