"""The query language: examples of every construct, positioned errors, and properties."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditline.search.query import (
    MAX_DEPTH,
    MAX_QUERY_CHARS,
    MAX_TERMS,
    And,
    Compare,
    Match,
    Node,
    Not,
    Or,
    ParseError,
    Text,
    conjunction,
    disjunction,
    parse,
    to_query,
)


def test_empty_query_is_no_query() -> None:
    assert parse("") is None
    assert parse("  \t\n ") is None


def test_bare_words_are_anded_full_text() -> None:
    assert parse("payment failed") == And((Text("payment"), Text("failed")))


def test_quoted_phrase_with_escapes() -> None:
    assert parse(r'"card \"declined\" \\ x"') == Text('card "declined" \\ x', phrase=True)


def test_prefix_word() -> None:
    assert parse("refund*") == Text("refund", prefix=True)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("user_id:alice", Match("user_id", "alice")),
        ('resource_id:"doc 42"', Match("resource_id", "doc 42")),
        ("resource_id:inv-*", Match("resource_id", "inv-", prefix=True)),
        ("action:login", Match("action", "LOGIN")),
        ("severity:error", Match("severity", "ERROR")),
        ("outcome:failure", Match("outcome", "failure")),
        ("actor_type:service", Match("actor_type", "service")),
        ("ip_address:10.1.2.3", Match("ip_address", "10.1.2.3/32")),
        ("ip_address:10.1.2.3/8", Match("ip_address", "10.0.0.0/8")),
        ("ip_address:2001:db8::1", Match("ip_address", "2001:db8::1/128")),
        (
            "id:0190A5C4-0000-7000-8000-000000000001",
            Match("id", "0190a5c4-0000-7000-8000-000000000001"),
        ),
        ("metadata.geo.country:DE", Match("metadata.geo.country", "DE")),
        ("metadata.plan-name:pro*", Match("metadata.plan-name", "pro", prefix=True)),
        ("severity>=warning", Compare("severity", ">=", "WARNING")),
        ("timestamp>2026-01-01", Compare("timestamp", ">", datetime(2026, 1, 1, tzinfo=UTC))),
        (
            "timestamp<=2026-01-01T12:30:00+02:00",
            Compare("timestamp", "<=", datetime(2026, 1, 1, 10, 30, tzinfo=UTC)),
        ),
        ("metadata.amount<-2.5", Compare("metadata.amount", "<", -2.5)),
    ],
)
def test_field_expressions(query: str, expected: Node) -> None:
    assert parse(query) == expected
    assert metadata_path_consistent(expected)


def metadata_path_consistent(node: Node) -> bool:
    if isinstance(node, Match | Compare) and node.field.startswith("metadata."):
        return node.metadata_path == tuple(node.field.split(".")[1:])
    return True


def test_precedence_not_over_and_over_or() -> None:
    assert parse("a b OR NOT c d") == Or(
        (And((Text("a"), Text("b"))), And((Not(Text("c")), Text("d"))))
    )


def test_parentheses_and_explicit_and() -> None:
    assert parse("(a OR b) AND -user_id:bob") == And(
        (Or((Text("a"), Text("b"))), Not(Match("user_id", "bob")))
    )


def test_operators_are_only_upper_case_and_whole_words() -> None:
    assert parse("cats and dogs") == And((Text("cats"), Text("and"), Text("dogs")))
    assert parse("ORDER ANDROID") == And((Text("ORDER"), Text("ANDROID")))
    assert parse('"OR"') == Text("OR", phrase=True)


def test_nested_groups_flatten() -> None:
    assert parse("(a b) (c d)") == And((Text("a"), Text("b"), Text("c"), Text("d")))
    assert parse("(a OR b) OR c") == Or((Text("a"), Text("b"), Text("c")))


@pytest.mark.parametrize(
    ("query", "position", "fragment"),
    [
        ('user_id:alice "open', 14, "closing"),
        ("a OR", 4, "end of the query"),
        ("OR a", 0, "operator OR"),
        ("a AND AND b", 6, "operator AND"),
        ("(a b", 0, "missing ')'"),
        ("a b)", 3, "unexpected ')'"),
        ("()", 0, "empty parentheses"),
        ("a - b", 2, "'-' must be followed"),
        ("colour:red", 0, "unknown field 'colour'"),
        ("severity:LOUD", 9, "severity is one of"),
        ("severity>=x", 10, "severity is one of"),
        ("timestamp:2026-01-01", 10, "needs a comparison"),
        ("timestamp>yesterday", 10, "RFC 3339"),
        ("timestamp>2026-01-01T10:00:00", 10, "RFC 3339"),
        ("timestamp>2026-02-30", 10, "not a valid date"),
        ("ip_address:10.0.0.300", 11, "IP address"),
        ("id:nope", 3, "UUID"),
        ("outcome:ok", 8, "outcome is one of"),
        ("severity:warn*", 9, "does not take a prefix"),
        ("user_id>bob", 8, "cannot be compared"),
        ("metadata.n>ten", 11, "need a number"),
        ("metadata.n>1*", 11, "prefix"),
        ("user_id:", 8, "expected a value"),
        ("user_id:*", 8, "expected a value"),
        ('user_id:""', 8, "empty value"),
        ("*", 0, "prefix search"),
        ("--- ok", 2, "'-' must be followed"),
        ("!!!", 0, "letter or digit"),
        ('"  "', 0, "letter or digit"),
        (r'"a\b"', 2, "backslash"),
    ],
)
def test_errors_point_at_the_problem(query: str, position: int, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(query)
    assert info.value.position == position, info.value
    assert fragment in info.value.message


def test_limits_are_parse_errors() -> None:
    with pytest.raises(ParseError) as too_long:
        parse("a" * (MAX_QUERY_CHARS + 1))
    assert too_long.value.position == MAX_QUERY_CHARS
    with pytest.raises(ParseError, match="more than"):
        parse(" ".join(["w"] * (MAX_TERMS + 1)))
    with pytest.raises(ParseError, match="nests deeper"):
        parse("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ParseError, match="nests deeper"):
        parse("-" * (MAX_DEPTH + 1) + "a")


def test_canonical_printing() -> None:
    node = parse('NOT (a OR "b c") user_id:"x y" severity>=warning timestamp<2026-01-01')
    assert node is not None
    assert to_query(node) == (
        'NOT (a OR "b c") user_id:"x y" severity>=WARNING timestamp<2026-01-01T00:00:00Z'
    )


def test_times_with_offsets_are_normalised_to_utc() -> None:
    node = parse("timestamp>=2026-03-01T00:30:00-01:00")
    assert node == Compare(
        "timestamp", ">=", datetime(2026, 3, 1, 0, 30, tzinfo=timezone(-timedelta(hours=1)))
    )
    assert isinstance(node, Compare)
    assert isinstance(node.value, datetime)
    assert node.value.tzinfo == UTC


# ---------------------------------------------------------------------------------------
# Properties

_query_alphabet = st.sampled_from(
    [
        *(string.ascii_letters + string.digits + ' "()-*:<>=._\\/@\t'),
        *("AND", "OR", "NOT", "user_id:", "severity>=", "metadata.a:", "timestamp>", "é", "中"),
    ]
)


@settings(max_examples=600, deadline=None)
@given(st.lists(_query_alphabet, max_size=40).map("".join))
def test_parse_never_fails_except_with_a_positioned_parse_error(query: str) -> None:
    check_parse(query)


def check_parse(query: str) -> None:
    """parse() returns a tree that prints back to itself, or a positioned ParseError."""
    error: ParseError | None = None
    try:
        node = parse(query)
    except ParseError as raised:
        error = raised
        node = None
    if error is not None:
        assert 0 <= error.position <= len(query)
    elif node is not None:
        assert parse(to_query(node)) == node


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_unicode_never_crashes_the_parser(query: str) -> None:
    check_parse(query)


_word = st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=1, max_size=8)
_raw_value = st.text(
    alphabet=string.ascii_letters + string.digits + "-_.:/@é", min_size=1, max_size=10
)
_any_value = st.text(min_size=1, max_size=12)
_keyword_field = st.sampled_from(["user_id", "session_id", "resource_type", "resource_id"])
_metadata_field = st.lists(
    st.text(alphabet=string.ascii_lowercase + "_-", min_size=1, max_size=5), min_size=1, max_size=3
).map(lambda keys: "metadata." + ".".join(keys))
_aware = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

_leaves: st.SearchStrategy[Node] = st.one_of(
    _word.filter(lambda w: w not in {"AND", "OR", "NOT"} and any(c.isalnum() for c in w)).map(Text),
    _word.map(lambda w: Text(w, prefix=True)),
    st.text(min_size=1, max_size=12)
    .filter(lambda t: any(c.isalnum() for c in t))
    .map(lambda t: Text(t, phrase=True)),
    st.builds(Match, st.one_of(_keyword_field, _metadata_field), _any_value),
    st.builds(
        lambda f, v: Match(f, v, prefix=True),
        st.one_of(_keyword_field, _metadata_field),
        _raw_value,
    ),
    st.sampled_from(["INFO", "WARNING", "ERROR", "CRITICAL"]).map(lambda s: Match("severity", s)),
    st.sampled_from(["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]).map(
        lambda v: Match("ip_address", v)
    ),
    st.builds(
        Compare,
        st.just("severity"),
        st.sampled_from([">", ">=", "<", "<="]),
        st.sampled_from(["INFO", "ERROR"]),
    ),
    st.builds(Compare, st.just("timestamp"), st.sampled_from([">", "<="]), _aware),
    st.builds(
        Compare,
        _metadata_field,
        st.sampled_from([">", "<"]),
        st.one_of(
            st.integers(-(10**9), 10**9).map(float),
            st.floats(allow_nan=False, allow_infinity=False, width=32),
        ),
    ),
)


def _trees(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        children.map(Not),
        st.lists(children, min_size=2, max_size=3).map(conjunction),
        st.lists(children, min_size=2, max_size=3).map(disjunction),
    )


_asts = st.recursive(_leaves, _trees, max_leaves=8)


@settings(max_examples=500, deadline=None)
@given(_asts)
def test_printing_then_parsing_gives_back_the_same_tree(node: Node) -> None:
    assert parse(to_query(node)) == node
