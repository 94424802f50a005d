"""Request schemas: a faster IP address field must accept, spell and reject as pydantic's."""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime, timedelta, timezone
from ipaddress import IPv6Address
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, IPvAnyAddress, ValidationError

from auditline.api.api_keys import ApiKeyIn
from auditline.api.schemas import EventIn, TenantIn
from auditline.api.search_schemas import SearchParams
from auditline.domain.validation import has_control_character


class Reference(BaseModel):
    ip_address: IPvAnyAddress | None = None


def reference_outcome(value: Any) -> object:
    if value is not None and not isinstance(value, str):
        # Differs: IPvAnyAddress reads numbers and booleans (True is 0.0.0.1) as IPv4.
        return [{"type": "ip_any_address", "loc": ("ip_address",),
                 "msg": "value is not a valid IPv4 or IPv6 address", "input": value}]  # fmt: skip
    try:
        address = Reference.model_validate({"ip_address": value}).ip_address
    except ValidationError as exc:
        return exc.errors()
    if isinstance(address, IPv6Address) and address.scope_id is not None:
        return zone_error(value)  # the one difference: PostgreSQL cannot store a zone
    return None if address is None else str(address)


def zone_error(value: Any) -> list[Any]:
    return [
        {
            "type": "ip_zone",
            "loc": ("ip_address",),
            "msg": "must not carry a zone (the %... suffix of an IPv6 address)",
            "input": value,
        }
    ]


def outcome(value: Any) -> object:
    try:
        event = EventIn.model_validate({"action": "LOGIN", "ip_address": value})
    except ValidationError as exc:
        return exc.errors()
    return event.ip_address


octets = st.integers(0, 300).map(str) | st.text(alphabet="0123456789", min_size=1, max_size=3)
address_inputs = (
    st.ip_addresses().map(str)
    | st.lists(octets, min_size=4, max_size=4).map(".".join)
    | st.text(alphabet="0123456789.:abcdefABCDEF%\u0663 ", max_size=20)
    | st.integers(-1, 2**129)
    | st.booleans()
    | st.none()
    | st.just(["10.0.0.1"])
)


zoned = st.tuples(
    st.ip_addresses(v=6).map(str), st.text(alphabet="abcdefghijklmnopqrstuvwxyz019%.", min_size=1)
).map("%".join)


@given(address_inputs | zoned)
def test_ip_addresses_are_accepted_spelled_and_rejected_as_ipvanyaddress_does(value: Any) -> None:
    # as IPvAnyAddress does, except for a zone and for what is not text (reference_outcome)
    assert outcome(value) == reference_outcome(value)


@pytest.mark.parametrize("value", ["fe80::1%eth0", "::1%1", "::ffff:10.0.0.1%lo"])
def test_an_address_with_a_zone_is_refused(value: str) -> None:
    assert outcome(value) == zone_error(value)


@pytest.mark.parametrize(
    ("value", "text"), [("10.0.0.1", "10.0.0.1"), ("2001:DB8::1", "2001:db8::1")]
)
def test_the_draft_holds_the_address_as_python_prints_it(value: Any, text: str) -> None:
    assert outcome(value) == text


@pytest.mark.parametrize("value", [167772161, True, 0, 2**128 - 1])
def test_only_text_is_an_address(value: Any) -> None:
    assert outcome(value) == reference_outcome(value)
    assert isinstance(outcome(value), list)


def test_a_bad_address_is_reported_like_any_other_field() -> None:
    errors = outcome("10.0.0.256")

    assert errors == [
        {
            "type": "ip_any_address",
            "loc": ("ip_address",),
            "msg": "value is not a valid IPv4 or IPv6 address",
            "input": "10.0.0.256",
        }
    ]


def test_the_address_field_is_documented_in_json_schemas_formats() -> None:
    schema = EventIn.model_json_schema()["properties"]["ip_address"]["anyOf"][0]

    # "ipvanyaddress", pydantic's name, is a format no JSON Schema tool knows.
    assert schema["anyOf"] == [
        {"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"},
    ]  # fmt: skip


# -- identifiers and names -------------------------------------------------------------

any_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=8)


def forbidden(text: str) -> bool:
    """The reference: a Unicode control character (Cc) or a line or paragraph separator."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)


def accepted(model: type[BaseModel], field: str, text: str, **others: Any) -> bool:
    document = {**others, field: text}
    outcomes: list[list[str]] = []
    for validate in (
        lambda: model.model_validate_json(json.dumps(document)),  # the direct path
        lambda: model.model_validate(document),  # FastAPI's path, and query parameters
    ):
        try:
            validate()
        except ValidationError as exc:
            outcomes.append([e["msg"] for e in exc.errors()])
        else:
            outcomes.append([])
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] in ([], ["must not contain control characters or line breaks"])
    return outcomes[0] == []


@pytest.mark.parametrize(
    "field", ["user_id", "session_id", "resource_type", "resource_id", "request_id"]
)
@given(text=any_text)
def test_an_identifier_is_refused_exactly_when_it_holds_a_control_character(
    field: str, text: str
) -> None:
    assert accepted(EventIn, field, text, action="LOGIN") is not forbidden(text)
    assert has_control_character(text) is forbidden(text)


@given(text=any_text)
def test_names_and_search_identifiers_follow_the_same_rule(text: str) -> None:
    expected = not forbidden(text)
    assert accepted(TenantIn, "name", text, id="acme") is expected
    assert accepted(ApiKeyIn, "name", text, scopes=["logs:read"]) is expected
    assert accepted(SearchParams, "resource_id", text) is expected


def test_the_identifier_rule_is_in_the_openapi_document() -> None:
    schema = EventIn.model_json_schema()["properties"]["user_id"]["anyOf"][0]

    assert schema == {
        "type": "string", "minLength": 1, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]*$",
    }  # fmt: skip


# -- times ---------------------------------------------------------------------------------

RFC3339_REFUSAL = (
    "Input should be an RFC 3339 date-time with seconds and an offset, "
    "e.g. 2026-11-30T09:15:00+01:00"
)
instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
)


def timestamp_outcome(value: Any) -> object:
    """(JSON body, query parameter) outcomes: the time, or the errors' messages."""
    outcomes = []
    for validate in (
        lambda: EventIn.model_validate_json(json.dumps({"action": "A", "timestamp": value})),
        lambda: SearchParams.model_validate({"start": value}),
    ):
        try:
            model = validate()
        except ValidationError as exc:
            outcomes.append([e["msg"] for e in exc.errors()])
        else:
            outcomes.append(getattr(model, "timestamp", None) or getattr(model, "start", None))
    assert outcomes[0] == outcomes[1]
    return outcomes[0]


def whole_minutes(moment: datetime) -> bool:
    """RFC 3339 offsets are hours and minutes (some historic zones have seconds)."""
    offset = moment.utcoffset()
    return offset is not None and offset.total_seconds() % 60 == 0


def spell(moment: datetime, data: st.DataObject) -> tuple[str, datetime]:
    """*moment* in one of RFC 3339's spellings of it, and the instant that spelling names
    (fractions beyond microseconds are cut, as pydantic cuts them)."""
    digits = data.draw(st.integers(0, 9))
    fraction = f"{moment.microsecond:06d}000"[:digits]
    minutes = int(moment.utcoffset().total_seconds()) // 60  # type: ignore[union-attr]
    zone = f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    if minutes == 0 and data.draw(st.booleans()):
        zone = data.draw(st.sampled_from(["Z", "z"]))
    separator = data.draw(st.sampled_from(["T", "t"]))
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{separator}"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
        + (f".{fraction}" if digits else "")
        + zone
    )
    fixed = timezone(timedelta(minutes=minutes))  # a zone's own fold rules stay out of it
    return text, moment.replace(microsecond=int(f"{fraction}000000"[:6]), tzinfo=fixed)


@given(moment=instants.filter(whole_minutes), data=st.data())
def test_every_rfc3339_spelling_of_an_instant_is_that_instant(
    moment: datetime, data: st.DataObject
) -> None:
    text, named = spell(moment, data)

    parsed = timestamp_outcome(text)

    assert isinstance(parsed, datetime), (text, parsed)
    assert parsed == named
    assert parsed.utcoffset() == named.utcoffset()


unix_times = (
    st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(0, 2**40).map(str)
    | st.floats(0, 2**40).map(str)
)


@given(unix_times)
def test_a_unix_time_is_refused_in_any_spelling(value: Any) -> None:
    assert timestamp_outcome(value) == [RFC3339_REFUSAL]


NOT_RFC3339 = [
    lambda t: t.replace(t[10], " ", 1),  # a space for the T
    lambda t: t[:16] + t[19:],  # no seconds
    lambda t: t[:-3] + t[-2:],  # +0100
    lambda t: t[:-6],  # no offset: a naive time
    lambda t: t[:10],  # a date alone
    lambda t: t + " ",
    lambda t: t.replace("-", "", 2),  # the basic format, 20261130T...
]


@given(moment=instants.filter(whole_minutes), data=st.data())
def test_iso_8601_forms_rfc3339_does_not_have_are_refused(
    moment: datetime, data: st.DataObject
) -> None:
    text = moment.replace(microsecond=0).isoformat()  # always ends in an offset: +HH:MM
    mutate = data.draw(st.sampled_from(NOT_RFC3339))

    assert timestamp_outcome(mutate(text)) == [RFC3339_REFUSAL]
