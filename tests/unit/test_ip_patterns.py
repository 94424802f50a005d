"""The IP address patterns the OpenAPI document states agree with what ``ipaddress`` reads."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditline.api.search_schemas import SearchParams
from auditline.domain.normalise import IPV4_PATTERN, IPV6_PATTERN

V4 = re.compile(IPV4_PATTERN)
V6 = re.compile(IPV6_PATTERN)


def _reads(text: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return "%" not in text


@given(st.ip_addresses(v=6))
def test_every_spelling_of_an_ipv6_address_matches(address: ipaddress.IPv6Address) -> None:
    for text in (str(address), address.exploded, str(address).upper()):
        assert V6.fullmatch(text), text
    if address.ipv4_mapped is not None:
        assert V6.fullmatch(f"::ffff:{address.ipv4_mapped}")


@given(st.ip_addresses(v=4))
def test_every_ipv4_address_matches(address: ipaddress.IPv4Address) -> None:
    assert V4.fullmatch(str(address))


@given(st.text(alphabet="0123456789abcdefABCDEF:.%/", max_size=45))
def test_the_patterns_take_exactly_what_ipaddress_reads(text: str) -> None:
    assert bool(V6.fullmatch(text)) == _reads(text, ipaddress.IPv6Address)
    assert bool(V4.fullmatch(text)) == _reads(text, ipaddress.IPv4Address)


@pytest.mark.parametrize(
    "text",
    ["1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "1:2:3:4:5::1.2.3.4", "::", "1::", "::ffff:1.2.3.4"],
)
def test_the_compressed_forms_at_the_edges_match(text: str) -> None:
    assert V6.fullmatch(text)


@pytest.mark.parametrize(
    ("given", "network"),
    [
        ("10.1.2.3", "10.1.2.3/32"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("2001:db8::1/32", "2001:db8::/32"),
    ],
)
def test_a_search_takes_an_address_or_a_network(given: str, network: str) -> None:
    assert SearchParams(ip_address=given).ip_address == network


@pytest.mark.parametrize(
    "text", ["10.0.0.0/255.0.0.0", "10.0.0.0/08", "10.0.0.0/33", "fe80::1%eth0", "::/129", "1"]
)
def test_a_search_refuses_what_the_document_does_not_offer(text: str) -> None:
    with pytest.raises(ValueError, match="an IP address or a CIDR network"):
        SearchParams(ip_address=text)
