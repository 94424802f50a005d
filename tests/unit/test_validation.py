"""Ingest limits: the cheap pre-check must never let through what the exact check rejects."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from auditline.config import IngestSettings
from auditline.domain.events import EventDraft, FieldError
from auditline.domain.validation import (
    MAX_SAFE_INTEGER,
    EventChecker,
    _check_json,
    _check_json_exactly,
    _json_is_clearly_within,
    check_event,
    check_json,
    has_surrogate,
    repeated_ids,
    settings_limits,
    storable_text,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# Small limits, so that generated documents cross every one of them now and then.
tight_limits = st.builds(
    IngestSettings,
    max_json_bytes=st.integers(64, 400),
    max_json_depth=st.integers(1, 5),
    max_json_keys=st.integers(1, 12),
)

awkward_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 2**70])
    | st.floats()  # NaN and the infinities included
    | st.text(alphabet=st.sampled_from("ab\x00\\u0é\U0001f600\ud800"), max_size=12)
)
awkward_keys = st.text(alphabet=st.sampled_from("ab\x00\\u0"), max_size=6)
json_documents = st.recursive(
    awkward_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(awkward_keys, children, max_size=4)
    ),
    max_leaves=40,
)


def outcome(check: Callable[[str, Any, IngestSettings], list[FieldError]], *args: Any) -> object:
    """The errors found, or the type of exception raised (a lone surrogate cannot be stored)."""
    try:
        return check(*args)
    except orjson.JSONEncodeError as exc:
        return type(exc)


@given(value=json_documents, limits=tight_limits)
def test_the_fast_check_agrees_with_the_exact_walk(value: Any, limits: IngestSettings) -> None:
    assert outcome(_check_json, "metadata", value, limits) == outcome(
        _check_json_exactly, "metadata", value, limits
    )


@given(value=json_documents, limits=tight_limits)
def test_a_document_the_fast_check_clears_breaks_no_rule(
    value: Any, limits: IngestSettings
) -> None:
    try:
        cleared = _json_is_clearly_within(value, limits)
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits: not cleared
        cleared = False
    if cleared:
        assert _check_json_exactly("metadata", value, limits) == []


def test_ordinary_metadata_takes_the_fast_path() -> None:
    metadata = {"region": "eu-west-1", "client": {"version": "4.2", "retries": 3, "ok": True}}

    assert _json_is_clearly_within(metadata, IngestSettings())


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (
            {"a": {"b": {"c": 1}}},
            FieldError(("metadata", "a", "b", "c"), "nests deeper than 2 levels"),
        ),
        ({"k": "a\x00b"}, FieldError(("metadata", "k"), "must not contain NUL characters")),
        ({"k\x00": 1}, FieldError(("metadata", "k\x00"), "key must not contain NUL characters")),
        ({"n": math.nan}, FieldError(("metadata", "n"), "must be a finite number")),
        (
            {"n": [2**60]},
            FieldError(("metadata", "n", 0), "integer is outside the range -(2**53-1)..2**53-1"),
        ),
        ({str(i): i for i in range(5)}, FieldError(("metadata",), "has more than 4 keys in total")),
        ({"s": "x" * 100}, FieldError(("metadata",), "is larger than 64 bytes")),
    ],
)
def test_each_broken_rule_is_reported_with_its_path(value: Any, error: FieldError) -> None:
    limits = IngestSettings(max_json_depth=2, max_json_keys=4, max_json_bytes=64)

    assert not _json_is_clearly_within(value, limits)
    assert _check_json("metadata", value, limits) == [error]


def test_a_literal_backslash_u0000_is_not_a_nul_character() -> None:
    value = {"path": "C:\\u0000"}

    assert _check_json("metadata", value, IngestSettings()) == []


def test_a_checker_reports_what_check_event_reports() -> None:
    limits = IngestSettings(max_future_skew_seconds=60, max_past_days=1, max_field_chars=4)
    checker = EventChecker(limits, NOW)
    drafts = [
        EventDraft(action="X", timestamp=NOW + timedelta(seconds=61)),
        EventDraft(action="X", timestamp=NOW - timedelta(days=1, seconds=1)),
        EventDraft(action="X", timestamp=NOW, user_id="toolong", message="a\x00"),
        EventDraft(action="X", metadata={"ok": [1, "two"]}),
    ]

    reports = [checker.check(draft) for draft in drafts]

    assert reports == [check_event(draft, limits, NOW) for draft in drafts]
    assert [[e.path for e in report] for report in reports] == [
        [("timestamp",)],
        [("timestamp",)],
        [("user_id",), ("message",)],
        [],
    ]


def test_a_window_the_calendar_cannot_hold_fails_only_events_with_a_timestamp() -> None:
    checker = EventChecker(IngestSettings(max_past_days=999_999_999), NOW)

    assert checker.check(EventDraft(action="X")) == []
    with pytest.raises(OverflowError):
        checker.check(EventDraft(action="X", timestamp=NOW))


@given(value=json_documents, limits=tight_limits)
def test_a_document_the_exact_check_accepts_can_be_encoded_and_hashed(
    value: Any, limits: IngestSettings
) -> None:
    if _check_json_exactly("metadata", value, limits) == []:
        orjson.dumps(value)  # what the leaf hash does; a lone surrogate used to raise here


surrogate_text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()),
    max_size=8,
)


@given(surrogate_text)
def test_a_surrogate_is_found_exactly_when_utf8_cannot_encode_the_text(text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        assert has_surrogate(text)
    else:
        assert not has_surrogate(text)


@given(surrogate_text)
def test_storable_text_can_always_be_stored_and_leaves_storable_text_alone(text: str) -> None:
    kept = storable_text(text)

    kept.encode()
    assert "\x00" not in kept
    if "\x00" not in text and not has_surrogate(text):
        assert kept == text


def test_a_lone_surrogate_is_reported_where_it_is() -> None:
    draft = EventDraft(action="X", message="a\ud800", metadata={"k": ["\udc00"], "\udfff": {}})

    assert check_event(draft, IngestSettings(), NOW) == [
        FieldError(("message",), "must not contain unpaired UTF-16 surrogates (RFC 7493)"),
        FieldError(("metadata",), "a key must not contain unpaired UTF-16 surrogates (RFC 7493)"),
        FieldError(("metadata", "k", 0), "must not contain unpaired UTF-16 surrogates (RFC 7493)"),
    ]


record_limits = st.builds(
    IngestSettings,
    max_json_bytes=st.integers(1500, 4000),
    max_json_depth=st.integers(1, 5),
    max_json_keys=st.integers(4, 12),
)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@given(
    settings=json_documents.filter(lambda v: isinstance(v, dict)) | st.integers(0, 6).map(nested),
    name=st.text(min_size=1, max_size=200).filter(lambda n: "\x00" not in n),
    limits=record_limits,
)
def test_settings_within_their_limits_make_a_change_record_the_ingest_rules_accept(
    settings: dict[str, Any], name: str, limits: IngestSettings
) -> None:
    record = {"name": name, "retention_days": 36500, "archive_after_days": None}
    assume(_check_json("after", {**record, "settings": {}}, limits) == [])  # a sane config
    if check_json("settings", settings, settings_limits(limits)):
        return

    assert _check_json("after", {**record, "settings": settings}, limits) == []


@given(
    name=st.text(min_size=1, max_size=200).filter(lambda n: "\x00" not in n), limits=record_limits
)
def test_settings_of_the_largest_size_allowed_still_fit_in_a_change_record(
    name: str, limits: IngestSettings
) -> None:
    record = {"name": name, "retention_days": 36500, "archive_after_days": None}
    assume(_check_json("after", {**record, "settings": {}}, limits) == [])
    bounds = settings_limits(limits)
    room = bounds.max_json_bytes - len(b'{"s":""}')
    assume(bounds.max_json_depth >= 1 and bounds.max_json_keys >= 1 and room >= 0)
    largest = {"s": "x" * room}
    assert check_json("settings", largest, bounds) == []

    assert _check_json("after", {**record, "settings": largest}, limits) == []


@given(st.lists(st.none() | st.sampled_from([uuid.UUID(int=i) for i in range(4)]), max_size=8))
def test_each_repeat_of_an_id_is_reported_with_the_event_that_had_it_first(
    ids: list[uuid.UUID | None],
) -> None:
    drafts = [EventDraft(action="X", id=i) for i in ids]
    expected = [
        FieldError((n, "id"), f"is also the id of event {ids.index(i)}: ids must be unique")
        for n, i in enumerate(ids)
        if i is not None and ids.index(i) != n
    ]

    assert repeated_ids(drafts) == expected
