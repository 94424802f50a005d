"""One spelling per value: the normal forms events are stored, hashed and exported in.

The leaf hash (``integrity.leaf``) commits to these spellings, and storage, the API and the
exports must produce exactly the same ones from what PostgreSQL returns, so they live here,
below all of them: timestamps as UTC RFC 3339 with microseconds, IP addresses in Python's
canonical text form (with IPv4-mapped IPv6 spelled the same on every Python version).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime


def rfc3339(ts: datetime) -> str:
    """UTC, microsecond precision, ``Z`` suffix: one spelling per instant.

    The year is written with the digits it has, unpadded: four from year 1000 on, fewer
    before (``999-01-02T...``, possible when ``ingest.max_past_days`` reaches that far).
    That is how glibc's ``strftime("%Y")``, which this was first written with, spells it,
    and leaves are signed over it. It is spelled here without ``strftime``, whose ``%Y``
    for such years depends on the C library and the Python version, so that the spelling
    cannot change under a signed log; SDKs spell it the same way."""
    utc = ts.astimezone(UTC)
    # %-format beats both isoformat and an f-string with format specs here (twice per leaf).
    return "%d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond,
    )  # fmt: skip


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_PATTERN = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
"""An IPv4 address as ``ipaddress`` reads it (and prints it): four decimal octets of at most
255, without leading zeros. Unanchored, to be composed."""


def _ipv6_pattern() -> str:
    """RFC 3986's ``IPv6address`` rule (section 3.2.2) as a regular expression: eight groups
    of 1-4 hex digits, one run of zero groups shortened to ``::``, the last two groups
    optionally an IPv4 address. What ``ipaddress.IPv6Address`` reads, zones (``%eth0``)
    aside."""
    h16 = "[0-9A-Fa-f]{1,4}"
    ls32 = f"(?:{h16}:{h16}|{IPV4_PATTERN})"

    def groups(n: int) -> str:  # n groups, each followed by a colon
        return f"(?:{h16}:){{{n}}}" if n else ""

    def head(most: int) -> str:  # up to *most* + 1 groups before the "::"
        return f"(?:(?:{h16}:){{0,{most}}}{h16})?" if most >= 0 else ""

    forms = [f"{groups(6)}{ls32}", f"::{groups(5)}{ls32}"]
    forms += [f"{head(k - 1)}::{groups(5 - k)}{ls32}" for k in range(1, 6)]
    forms += [f"{head(5)}::{h16}", f"{head(6)}::"]
    return "(?:" + "|".join(forms) + ")"


IPV6_PATTERN = _ipv6_pattern()
"""An IPv6 address without a zone, as ``ipaddress`` reads it. Unanchored."""

_CANONICAL_IPV4 = re.compile(IPV4_PATTERN)


def is_canonical_ipv4(text: str) -> bool:
    """Whether *text* is an IPv4 address spelled exactly as ``ipaddress`` prints it.

    Four decimal octets of at most 255, without leading zeros. Such text needs no parsing
    to be validated or canonicalised, and most addresses in audit events are IPv4.
    """
    return _CANONICAL_IPV4.fullmatch(text) is not None


def canonical_ip(value: str | None) -> str | None:
    """One spelling per address; events hold addresses only in this form.

    IPv4 in dotted quads, IPv6 as RFC 5952 text, except IPv4-mapped addresses, which are
    spelled ``::ffff:1.2.3.4`` explicitly: Python changed how it prints those in 3.13, and
    a leaf hash must not depend on the interpreter version.
    """
    if value is None:
        return None
    if is_canonical_ipv4(value):
        return value
    address = ipaddress.ip_address(value)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)
