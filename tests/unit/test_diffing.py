"""Top-level changed fields between two snapshots, compared with JSON semantics."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditline.domain.diffing import changed_fields

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=15,
)
objects = st.dictionaries(st.text(max_size=4), json_values, max_size=6)


# --- concrete cases ----------------------------------------------------------------------


def test_reports_added_removed_and_modified_keys_sorted() -> None:
    before = {"role": "viewer", "name": "Ann", "email": "a@x.io", "tags": ["a"]}
    after = {"role": "admin", "name": "Ann", "phone": "1", "tags": ["a"]}

    assert changed_fields(before, after) == ["email", "phone", "role"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (True, 1),
        (False, 0),
        (1, "1"),
        (None, 0),
        (None, False),
        ("", None),
        ([], {}),
        ([1, 2], [2, 1]),
        ([1], [1, 1]),
        ({"a": 1}, {"a": 1, "b": None}),
        ({"a": [True]}, {"a": [1]}),
        ({"a": {"b": False}}, {"a": {"b": 0}}),
        ([1], 1),
        (Decimal(1), 1),  # not a JSON type: equal only to the same type
    ],
)
def test_values_that_differ_as_json_are_reported(old: object, new: object) -> None:
    assert changed_fields({"field": old}, {"field": new}) == ["field"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (1, 1.0),
        (0, -0.0),
        (float("nan"), float("nan")),
        ((1, 2), [1, 2]),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        ({"a": [1, {"b": 2}]}, {"a": [1.0, {"b": 2.0}]}),
    ],
)
def test_values_equal_as_json_are_not_reported(old: object, new: object) -> None:
    assert changed_fields({"field": old}, {"field": new}) == []


def test_key_present_as_null_differs_from_missing_key() -> None:
    assert changed_fields({"deleted_at": None}, {}) == ["deleted_at"]


def test_missing_snapshot_reports_every_key_of_the_other_side() -> None:
    snapshot = {"b": 1, "a": None, "c": {"d": 2}}

    assert changed_fields(None, snapshot) == ["a", "b", "c"]
    assert changed_fields(snapshot, None) == ["a", "b", "c"]
    assert changed_fields(None, None) == []
    assert changed_fields(None, {}) == []


def test_deeply_nested_values_do_not_hit_the_recursion_limit() -> None:
    def nested(leaf: object) -> object:
        value = leaf
        for _ in range(5_000):
            value = {"level": [value]}
        return value

    assert changed_fields({"doc": nested(1)}, {"doc": nested(1.0)}) == []
    assert changed_fields({"doc": nested(1)}, {"doc": nested(True)}) == ["doc"]


# --- properties --------------------------------------------------------------------------


@given(objects)
def test_a_snapshot_compared_with_itself_or_a_copy_has_no_changes(
    snapshot: dict[str, object],
) -> None:
    assert changed_fields(snapshot, snapshot) == []
    assert changed_fields(snapshot, copy.deepcopy(snapshot)) == []


@given(objects, objects)
def test_changed_fields_is_symmetric(before: dict[str, object], after: dict[str, object]) -> None:
    assert changed_fields(before, after) == changed_fields(after, before)


@given(objects, objects)
def test_added_and_removed_keys_are_reported_and_nothing_outside_either_side(
    before: dict[str, object], after: dict[str, object]
) -> None:
    changed = changed_fields(before, after)

    assert changed == sorted(set(changed))
    assert before.keys() ^ after.keys() <= set(changed)
    assert set(changed) <= before.keys() | after.keys()


@given(base=objects, key=st.text(max_size=4), value=json_values)
def test_exactly_the_modified_key_is_reported(
    base: dict[str, object], key: str, value: object
) -> None:
    before = {**base, key: value}
    after = {**base, key: [value]}  # wrapping in an array always changes a JSON value

    assert changed_fields(before, after) == [key]


@given(flag=st.booleans(), path=st.lists(st.sampled_from(["list", "object"]), max_size=5))
def test_booleans_never_equal_integers_at_any_depth(flag: bool, path: list[str]) -> None:
    as_bool: object = flag
    as_int: object = int(flag)
    for step in path:
        as_bool, as_int = (
            ([as_bool], [as_int]) if step == "list" else ({"k": as_bool}, {"k": as_int})
        )

    assert changed_fields({"field": as_bool}, {"field": as_int}) == ["field"]
