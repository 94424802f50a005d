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
    fast = _fast_path(value)
    return fast if fast is not None else rfc8785.dumps(value)


def _fast_path(value: Any) -> bytes | None:
    """orjson's sorted serialisation of *value* if it is the canonical one, else None.

    None only costs speed. Keys are checked last and only when the output is not pure
    ASCII: an ASCII document has no key beyond the BMP, and most documents are ASCII.
    """
    if not _types_are_exact(value):
        return None
    encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    if encoded.isascii() or _keys_within_bmp(value):
        return encoded
    return None


def _types_are_exact(value: Any) -> bool:
    """Whether *value* holds only types orjson spells as JCS does, integers in JCS's range.

    Exact types only: a subclass of a JSON type (a ``str`` or ``int`` enum, say) takes the
    reference path, so orjson's handling of subclasses never has to be trusted.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            # Strings and nulls need no further look: filtering them out in a comprehension
            # is cheaper than a turn of this loop each, and they are most values.
            stack.extend([v for v in item.values() if v.__class__ is not str and v is not None])
        elif kind is list:
            stack.extend(item)
        elif kind is int:
            if abs(item) > _MAX_SAFE_INTEGER:  # JCS refuses these; let rfc8785 say so
                return False
        elif kind is not str and kind is not bool and item is not None:
            return False  # floats, subclasses, anything else orjson might spell differently
    return True


def _keys_within_bmp(value: Any) -> bool:
    """Whether no object key in *value* has a character beyond U+FFFF.

    Such keys sort differently by UTF-16 code units (JCS) and by code points (orjson).
    All keys of an object are checked in one C-level pass over their concatenation; they
    are all strings, or orjson would have refused the value already.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            joined = "".join(item)
            if not joined.isascii() and max(joined) > "\uffff":
                return False
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return True
