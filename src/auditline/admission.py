"""Read admission: reads never queue without bound, and never take what ingest needs.

An audit log that falls seconds behind when an auditor opens a busy screen is not one an
operator can trust (issue #17: 1,000 events/s and 50 searches/s on two cores pushed ingest
p99 from tens of milliseconds to 5 s, because queues grew without bound). So each API
process admits at most ``reads.max_concurrent`` reads at once (the size of its read
connection pool, separate from the write pool), of those at most
``reads.max_concurrent_heavy`` exports and statistics, and of those at most
``reads.max_concurrent_exports`` exports, so that exports never take every slot statistics
need. A read that finds no free slot waits at most ``reads.queue_seconds``; then it is
refused (:class:`Overloaded`, answered 503 with ``Retry-After``) before it has done
anything: no access record, no query.

Slots bound how many reads run, not how much of the machine each takes; an export, a bulk
transfer, takes whatever CPU is left. So exports are also paced (:func:`paced`,
``search.export_duty``): they work a share of the time and leave the rest to ingest.

Writes are never admitted here: ingest has priority by construction, not by tuning.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, aclosing, asynccontextmanager
from typing import TypeVar

from auditline.config import ReadSettings
from auditline.metrics import Metrics, ReadKind

T = TypeVar("T")


async def paced(
    batches: AsyncIterator[T],
    duty: float,
    *,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[T]:
    """*batches*, with a pause before each after the first, so that a bulk read (an export)
    works *duty* of the time: each pause is (1 - duty) / duty of the time the batch before
    took (its query, and its encoding and sending by the consumer). Slots bound how many
    exports run; this bounds how much of the machine each takes, and it adapts: a batch
    slowed by a busy machine is followed by a longer pause.

    The next batch is asked for before the pause, so no pause follows the last one: an
    export ends (and records its completion) as soon as its last batch is sent. A *duty*
    of 1 passes the batches through."""
    async with aclosing(batches) as source:  # type: ignore[type-var]
        if duty >= 1:
            async for batch in source:
                yield batch
            return
        pause = 0.0
        while True:
            asked = clock()
            try:
                batch = await anext(source)
            except StopAsyncIteration:
                return
            queried = clock() - asked
            if pause:
                await sleep(pause)
            handed = clock()
            yield batch
            pause = (queried + clock() - handed) * (1 - duty) / duty


class Overloaded(Exception):
    """No admission slot freed within the bounded wait; the read was not started."""

    def __init__(self, kind: ReadKind, retry_after: int) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after


class _Gate:
    def __init__(self, kind: ReadKind, limit: int, wait: float, metrics: Metrics | None) -> None:
        self.kind = kind
        self._free = asyncio.Semaphore(limit)
        self._wait = wait
        self._metrics = metrics

    async def enter(self, retry_after: int) -> None:
        if self._free.locked():
            try:
                async with asyncio.timeout(self._wait):
                    await self._free.acquire()
            except TimeoutError:
                if self._metrics is not None:
                    self._metrics.reads_refused.labels(self.kind).inc()
                raise Overloaded(self.kind, retry_after) from None
        else:
            await self._free.acquire()  # free: returns without suspending
        if self._metrics is not None:
            self._metrics.reads_in_flight.labels(self.kind).inc()

    def leave(self) -> None:
        self._free.release()
        if self._metrics is not None:
            self._metrics.reads_in_flight.labels(self.kind).dec()


class ReadAdmission:
    """The process's read slots (see the module's docstring)."""

    def __init__(self, settings: ReadSettings, metrics: Metrics | None = None) -> None:
        self._retry_after = settings.retry_after_seconds
        self._reads = _Gate("read", settings.max_concurrent, settings.queue_seconds, metrics)
        self._heavy = _Gate("heavy", settings.max_concurrent_heavy, settings.queue_seconds, metrics)
        self._exports = _Gate(
            "export", settings.max_concurrent_exports, settings.queue_seconds, metrics
        )

    def read(self, *, heavy: bool = False) -> AbstractAsyncContextManager[None]:
        """Hold a read slot (and a heavy one for statistics) for the block; raises
        :class:`Overloaded` if none frees within the bounded wait."""
        return self._hold((self._heavy, self._reads) if heavy else (self._reads,))

    def export(self) -> AbstractAsyncContextManager[None]:
        """Hold an export's slots for the block: an export slot, a heavy one, a read one."""
        return self._hold((self._exports, self._heavy, self._reads))

    @asynccontextmanager
    async def _hold(self, gates: tuple[_Gate, ...]) -> AsyncIterator[None]:
        """The scarcest slot is taken first, so reads waiting for it never hold the more
        plentiful slots other reads need (an export waiting for another holds no heavy
        slot, a heavy read waiting holds no read slot)."""
        async with AsyncExitStack() as held:
            for gate in gates:
                await gate.enter(self._retry_after)
                held.callback(gate.leave)
            yield
