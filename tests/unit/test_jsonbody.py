"""The strict reading of JSON bodies: every I-JSON break is found, with a pointer to it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from auditline.api import jsonbody
from auditline.api.jsonbody import parse_body, read_body, repeats_excluded
from auditline.api.schemas import BulkIn, EventIn

# Text that may hold lone surrogates (hypothesis leaves them out unless asked).
awkward_text = st.text(
    alphabet=st.sampled_from("ab\x00\u00e9\U0001f600\ud800\udbff\udc00\udfff"), max_size=5
)
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | awkward_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(awkward_text, inner, max_size=3),
    max_leaves=12,
)


def utf8_writable(document: Any) -> bool:
    try:
        json.dumps(document, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def resolve(document: Any, loc: tuple[Any, ...]) -> Any:
    for step in loc:
        document = document[step]
    return document


@given(documents)
def test_a_body_is_refused_exactly_when_utf8_cannot_write_it(generated: Any) -> None:
    body = json.dumps(generated).encode()  # ensure_ascii: lone surrogates become escapes
    document = json.loads(body)  # what the text says: two escapes in a row may make a pair
    try:
        parsed = parse_body(body)
    except RequestValidationError as exc:
        assert not utf8_writable(document)
        for error in exc.errors():
            where = resolve(document, error["loc"][1:])
            # the string itself, or the object holding a key that has one
            assert isinstance(where, str | dict)
            assert not utf8_writable(where)
    else:
        assert utf8_writable(document)
        assert parsed == document


def test_a_surrogate_key_is_reported_at_its_object_and_not_entered() -> None:
    body = rb'{"a": {"\ud800": {"b": "\udc00"}}, "c": ["\ud800x"]}'

    with pytest.raises(RequestValidationError) as caught:
        parse_body(body)

    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [
        (("body", "a"), "a key must not contain unpaired UTF-16 surrogates (RFC 7493)"),
        (("body", "c", 0), "must not contain unpaired UTF-16 surrogates (RFC 7493)"),
    ]


def test_malformed_json_gets_fastapis_own_error() -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse_body(b'{"a": ')

    assert caught.value.errors() == [
        {"type": "json_invalid", "loc": ("body", 6), "msg": "JSON decode error", "input": {},
         "ctx": {"error": "Expecting value"}},
    ]  # fmt: skip


def test_a_document_too_deep_to_parse_is_a_400() -> None:
    with pytest.raises(Exception, match="error parsing the body") as caught:
        parse_body(b"[" * 100_000 + b"]" * 100_000)

    assert getattr(caught.value, "status_code", None) == 400


# -- repeated keys ---------------------------------------------------------------------


class Obj(list):  # type: ignore[type-arg]
    """A JSON object as written: its members in order, a key perhaps more than once."""


keys = st.sampled_from(["a", "b", 'q"', "c:", '":', "\\", "é"])
texts = st.sampled_from(["", "x", ":", '":', '\\":', ' " : ', "\U0001f600", "t:u"])
raw_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | texts,
    lambda inner: (
        st.lists(inner, max_size=3) | st.lists(st.tuples(keys, inner), max_size=4).map(Obj)
    ),
    max_leaves=10,
)
whitespace = st.sampled_from(["", " ", "\t", "\n", "\r\n ", "  "])


def write(value: Any, draw_ws: Callable[[], str], escape: Callable[[], bool]) -> str:
    """JSON text for *value*: whitespace between every token, strings spelled variously."""
    if isinstance(value, Obj):
        members = [
            f"{draw_ws()}{write(k, draw_ws, escape)}{draw_ws()}:{draw_ws()}"
            f"{write(v, draw_ws, escape)}{draw_ws()}"
            for k, v in value
        ]
        return "{" + ",".join(members) + draw_ws() + "}"
    if isinstance(value, list):
        return "[" + ",".join(draw_ws() + write(v, draw_ws, escape) for v in value) + "]"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=escape())
        return text.replace(":", "\\u003a") if escape() else text
    return json.dumps(value)


def repeats(value: Any, path: tuple[Any, ...] = ()) -> set[tuple[Any, ...]]:
    """Where *value* repeats a key, as pointers' paths (to the key, in its last object)."""
    found: set[tuple[Any, ...]] = set()
    if isinstance(value, Obj):
        seen: set[str] = set()
        for key, _ in value:
            if key in seen:
                found.add((*path, key))
            seen.add(key)
        last = dict(value)
        for key, child in last.items():
            found |= repeats(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found |= repeats(child, (*path, i))
    return found


event_documents = st.lists(
    st.tuples(st.sampled_from(["action", "user_id", "metadata", "after"]), raw_values),
    min_size=1,
    max_size=5,
).map(lambda members: Obj([("action", "LOGIN"), *members]))


@hyp_settings(max_examples=500)
@given(document=event_documents, data=st.data())
def test_repeated_keys_are_found_however_the_body_is_spelled(document: Obj, data: Any) -> None:
    body = write(document, lambda: data.draw(whitespace), lambda: data.draw(st.booleans())).encode()
    try:
        validated = EventIn.model_validate_json(body)
    except ValidationError:
        return  # another field is wrong: FastAPI reports it (the strict parse comes first)
    expected = repeats(document)

    if repeats_excluded(body, validated):
        assert expected == set()  # the count never clears a body that repeats a key
    if expected:
        with pytest.raises(RequestValidationError) as caught:
            read_body(EventIn, body)
        assert {e["loc"][1:] for e in caught.value.errors()} == expected
        assert {e["type"] for e in caught.value.errors()} == {"repeated_key"}
    else:
        assert read_body(EventIn, body) == validated


def test_an_ordinary_bulk_body_is_cleared_by_the_count_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(_: bytes) -> None:
        raise AssertionError("parsed a second time")

    monkeypatch.setattr(jsonbody, "parse_body", refuse)
    event = {
        "timestamp": "2026-11-30T09:15:00+01:00", "user_id": "alice", "action": "UPDATE",
        "ip_address": "2001:db8::1", "message": 'said "hi" twice',
        "metadata": {"client": {"version": "4.2", "os": "linux"}, "tags": ["a", "b"]},
        "before": {"total": 10}, "after": {"total": 12},
    }  # fmt: skip
    for separators in ((",", ":"), (", ", ": ")):
        body = json.dumps({"events": [event] * 50}, separators=separators).encode()

        assert len(read_body(BulkIn, body).events) == 50


class WithDefaults(BaseModel):
    x: int = 0
    extra: dict[str, int] = Field(default_factory=lambda: {"a": 1})


def test_a_defaults_keys_are_not_counted_as_if_the_text_held_them() -> None:
    body = b'{"x": 1, "x": 2}'  # two members in the text; the default holds one more key

    assert not repeats_excluded(body, WithDefaults.model_validate_json(body))
    with pytest.raises(RequestValidationError):
        read_body(WithDefaults, body)
