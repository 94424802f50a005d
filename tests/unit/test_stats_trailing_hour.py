"""Which way statistics count the partial hour a range ends in (``storage.stats``).

Both ways give the same numbers (``tests/integration/test_stats_top_lists.py``); these
tests pin down that the cheaper one is chosen, which decides what a request costs: the
current hour counted from its events cost about 14 times its rollup (92-99 against 7 ms
of PostgreSQL CPU with 100 k events in it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from auditline.storage.search.stats import _end_from_rollup

HOUR = datetime(2026, 12, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize("minutes_into_hour", [0.5, 2, 29, 31, 59])
def test_range_ending_now_is_counted_from_its_rollup_at_any_minute(
    minutes_into_hour: float,
) -> None:
    # The API's default end is "now" taken a moment before storage decides.
    now = HOUR + timedelta(minutes=minutes_into_hour)
    assert _end_from_rollup(now - timedelta(milliseconds=5), now)


def test_range_ending_in_the_future_is_counted_from_its_rollup() -> None:
    now = HOUR + timedelta(minutes=2)
    assert _end_from_rollup(HOUR + timedelta(minutes=10), now)


@pytest.mark.parametrize(
    ("end_minute", "expected"), [(10, False), (29, False), (31, True), (50, True)]
)
def test_range_ending_in_a_past_hour_counts_the_shorter_side(
    end_minute: int, expected: bool
) -> None:
    now = HOUR + timedelta(hours=3)
    assert _end_from_rollup(HOUR + timedelta(minutes=end_minute), now) is expected


def test_events_after_the_end_are_only_counted_up_to_now() -> None:
    # 20 minutes before the end, 5 after it up to now: the events after the end are fewer,
    # although the rest of the hour (40 minutes) is longer than the part before the end.
    now = HOUR + timedelta(minutes=25)
    assert _end_from_rollup(HOUR + timedelta(minutes=20), now)
    assert not _end_from_rollup(HOUR + timedelta(minutes=20), HOUR + timedelta(minutes=45))


def test_range_ending_on_the_hour_has_no_partial_hour_to_subtract() -> None:
    assert not _end_from_rollup(HOUR, HOUR + timedelta(minutes=30))
