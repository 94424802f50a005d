"""Exports work a share of the time: ``admission.paced``, on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from auditline.admission import paced


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def source(clock: Clock, took: list[float], closed: list[bool]) -> AsyncIterator[int]:
    try:
        for i, seconds in enumerate(took):
            clock.now += seconds  # the batch's query
            yield i
    finally:
        closed.append(True)


async def test_duty_one_passes_every_batch_through_without_pausing() -> None:
    clock, closed = Clock(), []
    got = [b async for b in paced(source(clock, [0.2, 0.3], closed), 1.0,
                                  clock=clock, sleep=clock.sleep)]  # fmt: skip
    assert got == [0, 1]
    assert clock.sleeps == []
    assert closed == [True]


async def test_each_pause_is_in_proportion_to_the_batch_before_it() -> None:
    clock, closed = Clock(), []
    encoded = [0.1, 0.2, 0.0]  # what the consumer spends on each batch
    got = []
    async for batch in paced(source(clock, [0.5, 0.25, 1.0], closed), 0.25,
                             clock=clock, sleep=clock.sleep):  # fmt: skip
        got.append(batch)
        clock.now += encoded[batch]
    assert got == [0, 1, 2]
    # query + encoding of each batch but the last, times (1 - 0.25) / 0.25
    assert clock.sleeps == pytest.approx([(0.5 + 0.1) * 3, (0.25 + 0.2) * 3])
    # so the export worked a quarter of its time up to its last batch
    assert sum(clock.sleeps) == pytest.approx(3 * (0.5 + 0.1 + 0.25 + 0.2))
    assert closed == [True]


async def test_no_pause_follows_the_last_batch() -> None:
    """An export ends, and records its completion, as soon as its last batch is sent."""
    clock, closed = Clock(), []
    got = [b async for b in paced(source(clock, [0.4], closed), 0.5,
                                  clock=clock, sleep=clock.sleep)]  # fmt: skip
    assert got == [0]
    assert clock.sleeps == []
    assert clock.now == pytest.approx(0.4)
    assert closed == [True]


async def test_a_consumer_that_stops_early_closes_the_source() -> None:
    clock, closed = Clock(), []
    batches = paced(source(clock, [0.1, 0.1, 0.1], closed), 0.5,
                    clock=clock, sleep=clock.sleep)  # fmt: skip
    assert await anext(batches) == 0
    await batches.aclose()  # type: ignore[attr-defined]
    assert closed == [True]
