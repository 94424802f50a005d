"""The strict reading of JSON bodies: every I-JSON break is found, with a pointer to it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given
from hypothesis import strategies as st

from auditline.api.jsonbody import parse_body

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
