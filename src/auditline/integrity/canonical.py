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
    """Whether orjson's sorted output is the canonical form; False only costs speed.

    Exact types only: a subclass of a JSON type (a ``str`` or ``int`` enum, say) takes the
    reference path, so orjson's handling of subclasses never has to be trusted.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            if not _keys_within_bmp(item):
                return False
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


def _keys_within_bmp(obj: dict[Any, Any]) -> bool:
    """Whether no key has a character beyond U+FFFF (where UTF-16 and code point order differ).

    One C-level pass over all keys at once: almost all keys are ASCII, which ``isascii``
    answers without looking at the characters.
    """
    try:
        joined = "".join(obj)
    except TypeError:  # a key that is not a string: the reference implementation refuses it
        return False
    return joined.isascii() or max(joined) <= "\uffff"
