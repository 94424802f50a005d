"""Read admission as a unit: slots, heavy slots first, bounded waits, counted refusals."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from auditline.admission import Overloaded, ReadAdmission
from auditline.config import ReadSettings
from auditline.metrics import Metrics


async def test_a_heavy_read_holds_a_heavy_and_a_read_slot_and_refusals_are_counted() -> None:
    metrics = Metrics()
    admission = ReadAdmission(
        ReadSettings(
            max_concurrent=2, max_concurrent_heavy=1, queue_seconds=0.01, retry_after_seconds=3
        ),
        metrics,
    )
    async with AsyncExitStack() as held:
        await held.enter_async_context(admission.read(heavy=True))
        with pytest.raises(Overloaded) as heavy:
            await held.enter_async_context(admission.read(heavy=True))
        assert (heavy.value.kind, heavy.value.retry_after) == ("heavy", 3)
        # The refused heavy read took no read slot: one of the two is still free.
        await held.enter_async_context(admission.read())
        with pytest.raises(Overloaded) as read:
            await held.enter_async_context(admission.read())
        assert read.value.kind == "read"
        assert metrics.reads_in_flight.labels("read")._value.get() == 2
    assert metrics.reads_refused.labels("heavy")._value.get() == 1
    assert metrics.reads_refused.labels("read")._value.get() == 1
    assert metrics.reads_in_flight.labels("read")._value.get() == 0
    async with admission.read(heavy=True), admission.read():  # all given back
        pass


async def test_a_read_waits_for_a_slot_freed_within_the_bounded_wait() -> None:
    admission = ReadAdmission(ReadSettings(max_concurrent=1, queue_seconds=5))
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with admission.read():
            entered.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await entered.wait()
    waiting = asyncio.create_task(admission.read().__aenter__())
    await asyncio.sleep(0)
    assert not waiting.done()  # queued, not refused
    release.set()
    await task
    await waiting  # admitted once the slot was given back


async def test_a_heavy_read_waiting_for_its_slot_holds_no_read_slot() -> None:
    admission = ReadAdmission(
        ReadSettings(max_concurrent=2, max_concurrent_heavy=1, queue_seconds=10)
    )
    async with admission.read(heavy=True):
        waiting = asyncio.create_task(admission.read(heavy=True).__aenter__())
        await asyncio.sleep(0)
        assert not waiting.done()
        # The one read slot left is free: a search is admitted at once, not after the wait.
        admitted = asyncio.create_task(admission.read().__aenter__())
        done, _ = await asyncio.wait({admitted}, timeout=5)
        assert done == {admitted}
        waiting.cancel()


async def test_exports_never_take_every_slot_statistics_need() -> None:
    """One export slot of two heavy ones (``reads.max_concurrent_exports``): a second
    export is refused as an export, holding nothing, while statistics still get the
    other heavy slot."""
    metrics = Metrics()
    admission = ReadAdmission(
        ReadSettings(max_concurrent=4, max_concurrent_heavy=2, max_concurrent_exports=1,
                     queue_seconds=0.01),
        metrics,
    )  # fmt: skip
    async with admission.export():
        with pytest.raises(Overloaded) as refused:
            await admission.export().__aenter__()
        assert refused.value.kind == "export"
        assert metrics.reads_in_flight.labels("heavy")._value.get() == 1
        assert metrics.reads_in_flight.labels("read")._value.get() == 1
        async with admission.read(heavy=True):  # statistics: the heavy slot left
            assert metrics.reads_in_flight.labels("heavy")._value.get() == 2
    assert metrics.reads_refused.labels("export")._value.get() == 1
    assert metrics.reads_in_flight.labels("export")._value.get() == 0
