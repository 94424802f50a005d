"""Request schemas: a faster IP address field must accept, spell and reject as pydantic's."""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, IPvAnyAddress, ValidationError

from auditline.api.schemas import EventIn


class Reference(BaseModel):
    ip_address: IPvAnyAddress | None = None


def reference_outcome(value: Any) -> object:
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
    assert outcome(value) == reference_outcome(value)


@pytest.mark.parametrize("value", ["fe80::1%eth0", "::1%1", "::ffff:10.0.0.1%lo"])
def test_an_address_with_a_zone_is_refused(value: str) -> None:
    assert outcome(value) == zone_error(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [("10.0.0.1", "10.0.0.1"), ("2001:DB8::1", "2001:db8::1"), (167772161, "10.0.0.1")],
)
def test_the_draft_holds_the_address_as_python_prints_it(value: Any, text: str) -> None:
    assert outcome(value) == text


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


def test_the_address_field_is_documented_as_pydantics() -> None:
    schema = EventIn.model_json_schema()["properties"]["ip_address"]

    assert schema == Reference.model_json_schema()["properties"]["ip_address"]
    assert {"type": "string", "format": "ipvanyaddress"} in schema["anyOf"]
