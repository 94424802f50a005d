"""The verifier's view of what removal records name: merged once where it is needed, not
again at every record (a log holds one record per removal batch), with the same answer."""

from __future__ import annotations

import random
from typing import Any

import pytest

from auditline.domain.access import ACCESS_RESOURCE
from auditline.domain.retention import merge_ranges, uncovered
from auditline.evidence import verify


def record(ranges: list[tuple[int, int]], carried: list[tuple[int, int]]) -> dict[str, Any]:
    return {
        "seq_ranges": [list(r) for r in ranges],
        "seq_ranges_total": len(ranges),
        "carried_ranges": [list(r) for r in carried],
        "carried_ranges_total": len(carried),
    }


def removals(count: int, seed: int) -> list[dict[str, Any]]:
    """*count* records of one or two ranges each (disjoint, adjacent and overlapping), each
    carrying a few earlier ones again, as records of later removals do."""
    rng = random.Random(seed)
    listed: list[tuple[int, int]] = []
    out = []
    for _ in range(count):
        own = []
        for _ in range(rng.randint(1, 2)):
            first = rng.randrange(0, 50 * count)
            own.append((first, first + rng.randrange(0, 40)))
        carried = rng.sample(listed, min(len(listed), rng.randint(0, 3)))
        listed += own
        out.append(record(own, carried))
    return out


@pytest.mark.parametrize(("count", "seed"), [(300, 1), (3000, 2)])
def test_the_named_ranges_are_merged_once_and_name_what_they_did(
    monkeypatch: pytest.MonkeyPatch, count: int, seed: int
) -> None:
    merges = 0
    real = verify.merge_ranges

    def counted(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        nonlocal merges
        merges += 1
        return real(ranges)

    monkeypatch.setattr(verify, "merge_ranges", counted)
    logged = verify._LoggedRemovals()
    every: list[tuple[int, int]] = []
    for seq, after in enumerate(removals(count, seed)):
        logged.note(seq, ACCESS_RESOURCE, "DELETE", after)
        logged.note(seq, "invoice", "DELETE", after)  # not a removal record: ignored
        every += [(int(a), int(b)) for a, b in after["seq_ranges"] + after["carried_ranges"]]
    expected = merge_ranges(every)
    assert logged.ranges == expected
    for first, last in [(0, 50 * count), (10, 400), (7 * count, 9 * count)]:
        assert logged.unnamed(first, last) == uncovered(expected, first, last)
    # Once for the view, plus an occasional compaction of a long list: never per record.
    assert merges <= 1 + count // 1000
    assert logged.partial == []


def test_a_record_listing_only_part_of_its_ranges_is_remembered() -> None:
    logged = verify._LoggedRemovals()
    logged.note(4, ACCESS_RESOURCE, "DELETE", {"seq_ranges": [[1, 2]], "seq_ranges_total": 3})
    logged.note(9, ACCESS_RESOURCE, "DELETE", record([(5, 6)], []))
    assert logged.partial == [4]
    assert logged.unnamed(0, 7) == [(0, 0), (3, 4), (7, 7)]
