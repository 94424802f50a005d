"""What removal records name (``domain.retention``): split into bounded records without
losing a range, carried on when records are removed, and gaps checked against what is
listed, never against a count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditline.domain.retention import (
    carried_ranges,
    merge_ranges,
    record_parts,
    removal_ranges,
    uncovered,
)

Ranges = list[tuple[int, int]]

ranges_st = st.lists(
    st.tuples(st.integers(0, 300), st.integers(0, 20)).map(lambda r: (r[0], r[0] + r[1])),
    max_size=40,
)


def numbers(ranges: Ranges) -> set[int]:
    return {n for first, last in ranges for n in range(first, last + 1)}


@given(own=ranges_st, carried=ranges_st, limit=st.integers(1, 7))
def test_record_parts_name_every_range_once_and_hold_at_most_the_limit(
    own: Ranges, carried: Ranges, limit: int
) -> None:
    parts = record_parts(own, carried, limit)
    assert all(1 <= len(p.seq_ranges) + len(p.carried_ranges) <= limit for p in parts)
    assert [r for p in parts for r in p.seq_ranges] == own  # in order, own first
    assert [r for p in parts for r in p.carried_ranges] == carried
    assert len(parts) == -(-(len(own) + len(carried)) // limit)  # no more records than needed
    assert sum(p.events for p in parts) == sum(b - a + 1 for a, b in own)


def test_record_parts_fill_each_record_with_own_ranges_then_carried_ones() -> None:
    parts = record_parts([(0, 0), (2, 2), (4, 4)], [(10, 12), (20, 20)], 2)
    assert [(p.seq_ranges, p.carried_ranges) for p in parts] == [
        ([(0, 0), (2, 2)], []),
        ([(4, 4)], [(10, 12)]),
        ([], [(20, 20)]),
    ]
    assert record_parts([], [], 2) == []
    with pytest.raises(ValueError, match="at least one range"):
        record_parts([(0, 0)], [], 0)


@given(named=ranges_st, first=st.integers(0, 330), width=st.integers(0, 40))
def test_uncovered_is_exactly_the_numbers_of_the_gap_nothing_names(
    named: Ranges, first: int, width: int
) -> None:
    last = first + width
    merged = merge_ranges(named)
    out = uncovered(merged, first, last)
    assert numbers(out) == set(range(first, last + 1)) - numbers(merged)
    assert out == merge_ranges(out)  # sorted, disjoint, not adjacent: one finding a run


def test_uncovered_reports_each_unnamed_run_of_a_gap() -> None:
    named = [(0, 3), (6, 6), (9, 20)]
    assert uncovered(named, 0, 3) == []
    assert uncovered(named, 2, 10) == [(4, 5), (7, 8)]
    assert uncovered(named, 21, 25) == [(21, 25)]
    assert uncovered([], 5, 5) == [(5, 5)]


def test_a_record_that_lists_fewer_ranges_than_it_counts_is_partial_and_names_only_those() -> None:
    old = {"seq_ranges": [[0, 0], [2, 2]], "seq_ranges_total": 6}
    found = removal_ranges(old)
    assert found is not None
    assert (found.ranges, found.partial) == ([(0, 0), (2, 2)], True)
    unknown = {"seq_ranges": [[0, 1]], "carried_ranges": [[5, 5]], "carried_ranges_total": None}
    found = removal_ranges(unknown)
    assert found is not None
    assert (found.ranges, found.partial) == ([(0, 1), (5, 5)], True)
    new = {"seq_ranges": [[4, 4]], "carried_ranges": [[0, 3]], "part": 2, "parts": 2}
    found = removal_ranges(new)
    assert found is not None
    assert (found.ranges, found.partial) == ([(0, 4)], False)
    # a part naming only carried ranges is still a removal record
    assert removal_ranges({"seq_ranges": [], "carried_ranges": [[7, 9]]}) is not None
    assert removal_ranges({"removed": 3}) is None
    assert removal_ranges("not a record") is None


def test_carried_ranges_are_what_the_removed_records_list_merged() -> None:
    records: list[object] = [
        {"seq_ranges": [[0, 0], [2, 2]], "part": 1, "parts": 2},
        {"seq_ranges": [[4, 4]], "carried_ranges": [[1, 1]], "part": 2, "parts": 2},
        {"seq_ranges": [[8, 8]], "seq_ranges_total": 9},  # an old partial record: 8 only
        {"reason": "not a removal record"},
    ]
    assert carried_ranges(records) == [(0, 2), (4, 4), (8, 8)]
    assert carried_ranges([]) == []
