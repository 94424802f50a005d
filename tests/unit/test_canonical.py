"""The orjson fast path must produce exactly the bytes of the RFC 8785 reference."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from auditline.integrity.canonical import _fast_path_is_exact, canonical_json
from auditline.integrity.leaf import canonical_ip

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
    assert not _fast_path_is_exact({"a": 1.5})
    assert not _fast_path_is_exact({"\U0001f600": 1, "\uffff": 2})
    assert not _fast_path_is_exact([2**60])
    assert _fast_path_is_exact({"é": [1, "x", None, True, {"k": -3}]})
    assert canonical_json({"\U0001f600": 1, "\uffff": 2}) == rfc8785.dumps(
        {"\U0001f600": 1, "\uffff": 2}
    )


def test_ip_spelling_does_not_depend_on_the_python_version() -> None:
    assert canonical_ip("::ffff:1.2.3.4") == "::ffff:1.2.3.4"
    assert canonical_ip("::FFFF:0102:0304") == "::ffff:1.2.3.4"
    assert canonical_ip("2001:DB8:0:0:1:0:0:1") == "2001:db8::1:0:0:1"
    assert canonical_ip("203.0.113.9") == "203.0.113.9"
