"""RFC 8785 (JCS) canonical JSON, with a fast path.

``rfc8785`` is the reference implementation we trust, but it is pure Python and was the
largest single cost of ingest. For the values audit events are made of (strings, integers,
booleans, null, nested objects and arrays) orjson with sorted keys produces the same bytes
(a property test checks it), except in two cases that JCS defines differently: numbers
with a fraction or exponent (ECMAScript number formatting) and object keys outside the
Basic Multilingual Plane (JCS sorts by UTF-16 code units, orjson by code points). Values
containing either take the reference path.
"""

from __future__ import annotations

from typing import Any

import orjson
import rfc8785

_MAX_SAFE_INTEGER = 2**53 - 1


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical serialisation of *value*."""
    if _fast_path_is_exact(value):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return rfc8785.dumps(value)


def _fast_path_is_exact(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bool) or item is None:
            continue
        if isinstance(item, int):
            if abs(item) > _MAX_SAFE_INTEGER:  # JCS refuses these; let rfc8785 say so
                return False
        elif isinstance(item, dict):
            for key in item:
                if not key.isascii() and any(ord(ch) > 0xFFFF for ch in key):
                    return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:  # floats, and anything else orjson might spell differently
            return False
    return True
