"""Fast paths of the leaf hash must produce exactly the bytes of their references."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum, StrEnum
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from auditline.domain.normalise import canonical_ip, is_canonical_ipv4, rfc3339
from auditline.integrity.canonical import _fast_path, canonical_json

scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text()
json_values = st.recursive(
    scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(json_values)
def test_canonical_json_equals_the_reference_implementation(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_values_jcs_spells_differently_take_the_reference_path() -> None:
    assert _fast_path({"a": 1.5}) is None
    assert _fast_path({"\U0001f600": 1, "\uffff": 2}) is None
    assert _fast_path([2**60]) is None
    assert _fast_path({"k": "\U0001f600"}) == rfc8785.dumps({"k": "\U0001f600"})
    assert _fast_path({"é": [1, "x", None, True, {"k": -3}]}) == rfc8785.dumps(
        {"é": [1, "x", None, True, {"k": -3}]}
    )
    assert canonical_json({"\U0001f600": 1, "\uffff": 2}) == rfc8785.dumps(
        {"\U0001f600": 1, "\uffff": 2}
    )


def test_ip_spelling_does_not_depend_on_the_python_version() -> None:
    assert canonical_ip("::ffff:1.2.3.4") == "::ffff:1.2.3.4"
    assert canonical_ip("::FFFF:0102:0304") == "::ffff:1.2.3.4"
    assert canonical_ip("2001:DB8:0:0:1:0:0:1") == "2001:db8::1:0:0:1"
    assert canonical_ip("203.0.113.9") == "203.0.113.9"


class Colour(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


@pytest.mark.parametrize("value", [{"c": Colour.RED}, [Level.HIGH], {"n": 1.0}, {"k": [1, 2.5]}])
def test_subclasses_and_floats_take_the_reference_path(value: Any) -> None:
    assert _fast_path(value) is None
    assert canonical_json(value) == rfc8785.dumps(value)


def test_keys_that_are_not_strings_are_refused() -> None:
    with pytest.raises(TypeError):
        canonical_json({1: "one"})


keys_around_the_bmp_edge = st.text(
    alphabet=st.sampled_from(["a", "é", "\ue000", "\uffff", "\U00010000", "\U0001f600"]),
    max_size=4,
)


@given(st.dictionaries(keys_around_the_bmp_edge, st.none() | st.integers(-5, 5), max_size=6))
def test_keys_beyond_the_bmp_are_detected_wherever_they_are(value: dict[str, Any]) -> None:
    beyond = any(ord(ch) > 0xFFFF for key in value for ch in key)

    assert (_fast_path({"outer": [value]}) is None) is beyond
    assert canonical_json({"outer": [value]}) == rfc8785.dumps({"outer": [value]})


def reference_rfc3339(ts: datetime) -> str:
    # strftime as glibc spells it; its %Y for years before 1000 differs between platforms
    # and Python versions, so the year is written out unpadded here.
    utc = ts.astimezone(UTC)
    return f"{utc.year}" + utc.strftime("-%m-%dT%H:%M:%S.%fZ")


offsets = st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23)))


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),  # room for any offset on either side of the calendar
        max_value=datetime(9999, 12, 30),
        timezones=st.none() | offsets,
    )
)
def test_rfc3339_spells_every_instant_as_strftime_does(ts: datetime) -> None:
    assert rfc3339(ts) == reference_rfc3339(ts)


def test_rfc3339_keeps_strftimes_spelling_of_years_before_1000() -> None:
    assert rfc3339(datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "999-01-02T03:04:05.000006Z"
    assert rfc3339(datetime(5, 6, 7, tzinfo=UTC)) == "5-06-07T00:00:00.000000Z"
    assert rfc3339(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2025-01-02T03:04:05.000000Z"


def reference_canonical_ip(value: str) -> str:
    address = ipaddress.ip_address(value)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def outcome(spell: Callable[[str], str | None], value: str) -> object:
    try:
        return spell(value)
    except ValueError:
        return ValueError


address_like = st.text(alphabet="0123456789.:abcdefABCDEF%\u0663 ", max_size=20)
octets = st.integers(0, 300).map(str) | st.text(alphabet="0123456789", min_size=1, max_size=3)
dotted_quads = st.lists(octets, min_size=4, max_size=4).map(".".join)


@given(st.ip_addresses().map(str) | address_like | dotted_quads)
def test_canonical_ip_agrees_with_parsing_every_address(value: str) -> None:
    assert outcome(canonical_ip, value) == outcome(reference_canonical_ip, value)


@given(st.ip_addresses(v=4))
def test_every_ipv4_address_printed_by_python_is_recognised_as_canonical(
    address: ipaddress.IPv4Address,
) -> None:
    assert is_canonical_ipv4(str(address))


@pytest.mark.parametrize(
    "text", ["010.1.1.1", "01.1.1.1", "1.1.1.00", "256.1.1.1", "1.1.1.259", "1.1.1", "1.1.1.1\n"]
)
def test_non_canonical_dotted_quads_are_not_taken_as_canonical(text: str) -> None:
    assert not is_canonical_ipv4(text)
