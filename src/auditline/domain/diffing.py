"""Which top-level fields of a record changed between two snapshots.

Audit events carry ``before`` and ``after`` snapshots of the changed resource; the list of
changed fields lets readers filter ("who touched ``role``?") without diffing payloads
themselves. Comparison follows JSON, not Python: ``true`` and ``1`` are different values,
whereas ``1`` and ``1.0`` are the same JSON number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeGuard


def changed_fields(
    before: Mapping[str, object] | None, after: Mapping[str, object] | None
) -> list[str]:
    """Return the sorted top-level keys that were added, removed or whose value differs.

    A missing snapshot (``None``: the resource was created or deleted) counts as an empty
    object, so every key of the other side is reported; two missing snapshots yield ``[]``.
    A key present with ``null`` on one side and absent on the other is reported: JSON
    distinguishes the two. Nested objects and arrays are compared deeply, with the same
    strictness at every level.
    """
    old: Mapping[str, object] = before if before is not None else {}
    new: Mapping[str, object] = after if after is not None else {}
    return sorted(
        key
        for key in old.keys() | new.keys()
        if key not in old or key not in new or not _json_equal(old[key], new[key])
    )


def _json_equal(left: object, right: object) -> bool:
    """Deep equality with JSON semantics, computed without recursion.

    * booleans equal only booleans (Python's ``True == 1`` does not apply);
    * numbers compare by value across ``int`` and ``float``; ``NaN`` equals ``NaN``, so an
      unchanged value is never reported as changed;
    * objects are equal when they have the same keys with equal values, in any order;
      arrays (``list`` or ``tuple``) when they have equal items in the same order;
    * any other value equals only a value of the same type that compares equal.

    An explicit work list instead of recursion keeps arbitrarily deep documents from
    hitting the interpreter's recursion limit.
    """
    pending = [(left, right)]
    while pending:
        a, b = pending.pop()
        if isinstance(a, bool) or isinstance(b, bool):
            if a is not b:
                return False
        elif isinstance(a, int | float) and isinstance(b, int | float):
            if a != b and not (_is_nan(a) and _is_nan(b)):
                return False
        elif isinstance(a, str) and isinstance(b, str):
            if a != b:
                return False
        elif isinstance(a, Mapping) and isinstance(b, Mapping):
            if a.keys() != b.keys():
                return False
            pending.extend((a[key], b[key]) for key in a)
        elif _is_array(a) and _is_array(b):
            if len(a) != len(b):
                return False
            pending.extend(zip(a, b, strict=True))
        elif type(a) is not type(b) or a != b:
            return False
    return True


def _is_array(value: object) -> TypeGuard[Sequence[object]]:
    return isinstance(value, list | tuple)


def _is_nan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)
