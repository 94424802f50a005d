"""The write path: events in, durable commit, sequence numbers out.

A write returns only after PostgreSQL has committed it with ``synchronous_commit = on``,
so a caller may acknowledge it (201) to its client: an acknowledged event survives a crash
of this process or of the database server.

Group commit: concurrent small writes wait on one shared commit instead of paying for one
each. Requests queue up while the previous transaction is committing; the flusher then
takes everything waiting (up to a cap; with a linger, once the oldest write is that old),
stores it in one transaction, one tenant after another (in tenant order, so two
transactions never deadlock on log heads), commits once, and wakes every waiter. A
request that fails inside a shared transaction (a bug, a constraint) would abort its
neighbours, so a failed group is retried one request per transaction: one bad request
never fails another.

A large write (a bulk request) is a group by itself, so it does not queue: it commits in
its own transaction on its own connection. Its rows are staged by COPY before its
tenant's log head is locked, so concurrent bulk requests of one tenant overlap their
transfers and wait for each other only while inserting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from auditline.domain.events import Event, WriteResult
from auditline.domain.tenants import TenantId, UnknownTenant
from auditline.metrics import Metrics
from auditline.storage.database import Connection, set_tenant
from auditline.storage.events import (
    SMALL_BATCH,
    PendingInsert,
    ensure_partition,
    partition_months,
    send_insert,
    stage,
)

log = logging.getLogger(__name__)


def month_of(ts: datetime) -> datetime:
    utc = ts.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def months_from(start: datetime, count: int) -> list[datetime]:
    """*count* consecutive month starts beginning with the month of *start*."""
    first = month_of(start)
    index = first.year * 12 + first.month - 1
    return [datetime((index + i) // 12, (index + i) % 12 + 1, 1, tzinfo=UTC) for i in range(count)]


@dataclass(eq=False)
class _Write:
    tenant: TenantId
    events: Sequence[Event]
    done: asyncio.Future[WriteResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    queued_at: float = field(default_factory=time.perf_counter)


class WriterClosed(RuntimeError):
    """The writer is shutting down and takes no more writes."""


class EventWriter:
    """Stores batches of prepared events durably, sharing commits between concurrent writes.

    With *group_commit* off every write gets its own transaction (kept for comparison in the
    benchmarks and for debugging); the guarantees are the same either way.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        *,
        group_commit: bool = True,
        max_group_events: int = 5000,
        linger: float = 0.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._group_commit = group_commit
        self._max_group_events = max_group_events
        self._linger = linger
        self._months: set[datetime] = set()
        self._queue: list[_Write] = []
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._own: Connection | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        async with self._pool.connection() as conn:
            self._months = {month_of(m) for m in await partition_months(conn)}
        if self._group_commit:
            self._flusher = asyncio.create_task(self._flush_forever(), name="group-commit")

    async def close(self) -> None:
        """Finish every queued write, then stop."""
        self._closed = True
        if self._flusher is not None:
            self._wakeup.set()
            await self._flusher
        if self._own is not None:
            await self._pool.putconn(self._own)
            self._own = None

    # -- partitions --------------------------------------------------------------------
    async def ensure_partitions(self, instants: Iterable[datetime]) -> None:
        """Create the month partitions holding *instants* that do not exist yet.

        Runs in its own short transaction, before the write: DDL inside the writing
        transaction would hold locks on the parent table until that commits.
        """
        stamps = list(instants)
        if not stamps:
            return
        first, last = month_of(min(stamps)), month_of(max(stamps))
        # A batch nearly always falls in one month, known from its two ends alone.
        months = {first} if first == last else {month_of(s) for s in stamps}
        missing = sorted(months - self._months)
        if not missing:
            return
        async with self._pool.connection() as conn:
            for month in missing:
                async with conn.transaction():
                    name = await ensure_partition(conn, month)
                log.info("events partition %s is ready", name)
                self._months.add(month)

    def forget_partitions(self, months: Iterable[datetime]) -> None:
        """Forget that the months' partitions exist (retention dropped them), so a late
        event for one of them creates it again instead of failing."""
        self._months -= {month_of(m) for m in months}

    # -- writing -----------------------------------------------------------------------
    async def write(self, tenant: TenantId, events: Sequence[Event]) -> WriteResult:
        """Store *events* for *tenant*; returns once the commit holding them is durable.

        A month this process believed to have a partition may have lost it since: the
        retention task of another process dropped it (``lifecycle.retention``). The write
        then fails before anything is stored; it is tried once more with the months of its
        events looked up again, which makes the partition anew.
        """
        try:
            return await self._write(tenant, events)
        except psycopg.errors.CheckViolation as exc:
            if not (exc.diag.message_primary or "").startswith("no partition of relation"):
                raise
            self.forget_partitions(event.timestamp for event in events)
            return await self._write(tenant, events)

    async def _write(self, tenant: TenantId, events: Sequence[Event]) -> WriteResult:
        await self.ensure_partitions(event.timestamp for event in events)
        if self._closed:
            raise WriterClosed("the service is shutting down")
        request = _Write(tenant, events)
        if self._flusher is None or len(events) > SMALL_BATCH:
            await self._commit_one(request)
        else:
            self._queue.append(request)
            self._wakeup.set()
        # shield: a caller that goes away must not cancel the shared future; the write may
        # still commit, which is fine for an unacknowledged event.
        return await asyncio.shield(request.done)

    async def _flush_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if self._linger:
                    await self._let_group_grow()
                group = self._take_group()
                if self._metrics is not None:
                    self._observe(self._metrics, group)
                try:
                    await self._commit_group(group)
                except Exception:
                    log.warning("group commit of %d writes failed; retrying singly", len(group))
                    for request in group:
                        await self._commit_one(request)
            if self._closed:
                return

    async def _let_group_grow(self) -> None:
        """Wait until the oldest queued write is as old as the linger, so that writes
        arriving meanwhile share its commit: a group collects over at least the linger, not
        only over the commit before it (so a linger shorter than a commit changes little
        under load). No wait once shutting down."""
        delay = self._queue[0].queued_at + self._linger - time.perf_counter()
        if delay > 0 and not self._closed:
            await asyncio.sleep(delay)

    @staticmethod
    def _observe(metrics: Metrics, group: list[_Write]) -> None:
        """Group sizes and how long each write waited to be taken: the first sign that the
        flusher (one commit in flight per process) is the bottleneck."""
        now = time.perf_counter()
        metrics.group_events.observe(sum(len(r.events) for r in group))
        for request in group:
            metrics.group_wait_seconds.observe(now - request.queued_at)

    def _take_group(self) -> list[_Write]:
        taken, size = 0, 0
        for request in self._queue:
            if taken and size + len(request.events) > self._max_group_events:
                break
            taken += 1
            size += len(request.events)
        group, self._queue = self._queue[:taken], self._queue[taken:]
        return group

    async def _commit_one(self, request: _Write) -> None:
        try:
            await self._commit_group([request])
        except Exception as exc:
            _settle(request, exc)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """The flusher keeps one connection across groups (no pool round trip per commit);
        after any failure it is handed back, and the pool replaces it if it is broken."""
        if self._flusher is None or asyncio.current_task() is not self._flusher:
            async with self._pool.connection() as conn:
                yield conn
            return
        if self._own is None:
            self._own = await self._pool.getconn()
        try:
            yield self._own
        except BaseException:
            conn, self._own = self._own, None
            await self._pool.putconn(conn)
            raise

    async def _commit_group(self, group: list[_Write]) -> None:
        """Store every write of *group* in one transaction; settles each write's future.

        Large shares are staged first, while no log head is locked. Then the whole rest of
        the transaction (each tenant's lock and insert, and the COMMIT) goes to the server
        as one pipeline: one round trip, and the heads are locked only while the server
        works, never while this process does.
        """
        by_tenant: dict[TenantId, list[_Write]] = {}
        for request in group:
            by_tenant.setdefault(request.tenant, []).append(request)
        batches = {
            tenant: [e for r in requests for e in r.events]
            for tenant, requests in sorted(by_tenant.items())
        }
        async with self._connection() as conn:
            try:
                staged: dict[TenantId, range] = {}
                first = 0
                for tenant, events in batches.items():
                    if len(events) > SMALL_BATCH:
                        staged[tenant] = await stage(conn, events, first)
                        first = staged[tenant].stop
                pending: list[PendingInsert] = []
                async with conn.pipeline():
                    for tenant, events in batches.items():
                        await set_tenant(conn, tenant)
                        pending.append(await send_insert(conn, tenant, events, staged.get(tenant)))
                    await conn.commit()
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    await conn.rollback()
                raise
            outcomes = [
                outcome
                for sent in pending
                for outcome in await _shares(by_tenant[sent.tenant], sent)
            ]
        for request, outcome in outcomes:  # only now is the transaction committed
            _settle(request, outcome)


async def _shares(
    requests: list[_Write], sent: PendingInsert
) -> list[tuple[_Write, WriteResult | Exception]]:
    """Each request's outcome of one tenant's combined write: its share, or UnknownTenant."""
    try:
        result = await sent.result()
    except UnknownTenant as exc:
        return [(r, exc) for r in requests]
    return list(zip(requests, _split(result, requests), strict=True))


def _split(result: WriteResult, requests: list[_Write]) -> list[WriteResult]:
    """Each request's share of a combined result; a repeated id is new only for the first."""
    if len(requests) == 1:  # a bulk request, or a tenant with one write in the group
        return [result]
    claimed: set[UUID] = set()
    shares = []
    for request in requests:
        inserted: dict[UUID, int] = {}
        duplicates: list[UUID] = []
        for event in request.events:
            if event.id in result.inserted and event.id not in claimed:
                claimed.add(event.id)
                inserted[event.id] = result.inserted[event.id]
            else:
                duplicates.append(event.id)
        shares.append(WriteResult(inserted=inserted, duplicates=duplicates))
    return shares


def _settle(request: _Write, outcome: WriteResult | BaseException) -> None:
    if request.done.done():
        return
    if isinstance(outcome, BaseException):
        request.done.set_exception(outcome)
    else:
        request.done.set_result(outcome)
