"""The indexer: follows each tenant's log by ``seq`` into OpenSearch, then propagates
removals.

One run for a tenant, in one PostgreSQL transaction that holds the tenant's progress row:

1. read the log head; then, batch by batch, the events with ``progress <= seq < head`` (in
   ``seq`` order, through ``event_ids``), index them in one bulk request each, and move
   the progress past the batch; one refresh before the transaction commits makes them
   all searchable first. Sequence numbers are gap-free and committed in order, so
   "everything below the progress is searchable" holds whenever the progress is seen; a
   crash repeats at most one run, and indexing is idempotent (a document's id is its
   tenant and event id).
2. delete from the index the ``removed_ranges`` not yet propagated, and flag them. This
   comes after step 1 read its events, so a removal committed meanwhile is deleted after
   the bulk that may have indexed it; one committed before was never read.

Access records are events of the tenant's log like any other, so they are indexed too
(searches leave them out unless asked, on both backends).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from psycopg_pool import AsyncConnectionPool

from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
from auditline.metrics import Metrics
from auditline.opensearch.client import OpenSearchIndex
from auditline.search.backend import SearchUnavailable
from auditline.storage import search_index as progress_store
from auditline.storage.database import (
    Connection,
    read_transaction,
    set_tenant,
    tenant_transaction,
)
from auditline.storage.retention import removed_ranges
from auditline.storage.stream import events_after, last_seq
from auditline.storage.tenants import list_tenants
from auditline.tenancy.scope import for_system

log = logging.getLogger(__name__)

_REMOVALS_PER_RUN: Final = 500
_UNAVAILABLE_IN_A_ROW: Final = 3
"""Tenants in a row that found the cluster unavailable before a pass gives up on the rest:
the cluster is down, and each further tenant would wait up to the request timeout."""


@dataclass(frozen=True, slots=True)
class IndexLag:
    """How far the index is behind PostgreSQL, over every tenant."""

    events: int
    """Events committed but not yet searchable on OpenSearch, summed."""
    seconds: float
    """How long ago the oldest of them was received (0: caught up)."""
    tenants_behind: int


class IndexingIncomplete(RuntimeError):
    """A pass of :meth:`SearchIndexer.index_all` in which some tenants' runs failed; the
    others' went through (*runs*) and are committed."""

    def __init__(self, runs: list[IndexRun], failures: dict[TenantId, Exception]) -> None:
        shown = "; ".join(f"{t}: {type(e).__name__}: {e}" for t, e in list(failures.items())[:5])
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        super().__init__(f"indexing failed for {len(failures)} tenant(s): {shown}{more}")
        self.runs = runs
        self.failures = failures


class RebuildBusy(RuntimeError):
    """Another rebuild of the search index is running."""


def _chunks(ranges: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
    """*ranges* in slices of at most ``_REMOVALS_PER_RUN``, one delete-by-query each."""
    for at in range(0, len(ranges), _REMOVALS_PER_RUN):
        yield ranges[at : at + _REMOVALS_PER_RUN]


def _within(stored: StoredEvent, start: datetime | None, end: datetime | None) -> bool:
    ts = stored.event.timestamp
    return (start is None or ts >= start) and (end is None or ts < end)


@dataclass(frozen=True, slots=True)
class Rebuild:
    """What :meth:`SearchIndexer.rebuild_all` did."""

    generation: int
    """The generation searches read now."""
    replaced: int
    """The one they read before (0: none), dropped."""
    tenants: int
    removed_ranges: int
    """How many removed ranges step 4 listed, summed over the tenants: each tenant's
    ``removed_ranges`` rows as step 4 read them under the lock (an archive restore's
    pieces of a range counted as they stand then), all flagged propagated there. None is
    in the new generation: step 2 deleted most of them, step 4 the rest
    (:attr:`locked_ranges`, a part of this count)."""
    locked_events: int
    """Events indexed while every tenant's progress was held (the live indexer skipped
    them meanwhile): only what arrived after the last unlocked copy pass."""
    locked_ranges: int
    """Removed ranges deleted while every tenant's progress was held: only those recorded
    after the unlocked deletion."""


@dataclass(frozen=True, slots=True)
class IndexRun:
    """What one run did for one tenant."""

    tenant: TenantId
    indexed: int
    removed_ranges: int
    next_seq: int
    """Every event below this is indexed."""
    behind: int
    """Events committed but not indexed when the run ended (0: caught up)."""
    skipped: bool = False
    """Another indexer held the tenant; this run did nothing."""


class SearchIndexer:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        index: OpenSearchIndex,
        *,
        batch_size: int = 2000,
        max_batches: int = 50,
        metrics: Metrics | None = None,
    ) -> None:
        """*max_batches* bounds one run per tenant, so one busy tenant cannot hold a
        worker; the next run continues where it stopped."""
        self._pool = pool
        self._index = index
        self._batch_size = batch_size
        self._max_batches = max_batches
        self._metrics = metrics
        self._lag: tuple[float, IndexLag] | None = None

    @property
    def index(self) -> OpenSearchIndex:
        return self._index

    async def lag(self, *, max_age_seconds: float = 0.0) -> IndexLag:
        """The index lag over every tenant, as PostgreSQL knows it (so any process can
        tell, not only the worker that indexes); one transaction, one query a tenant. An
        answer younger than *max_age_seconds* is given again instead (readiness probes
        come often)."""
        loop = asyncio.get_running_loop()
        if self._lag is not None and loop.time() - self._lag[0] < max_age_seconds:
            return self._lag[1]
        now = datetime.now(UTC)
        events = behind = 0
        oldest: datetime | None = None
        async with self._pool.connection() as conn, conn.transaction():
            for tenant in await self._tenants(conn):
                await set_tenant(conn, tenant)
                count, first = await progress_store.lag(conn, tenant)
                events += count
                behind += count > 0
                if first is not None and (oldest is None or first < oldest):
                    oldest = first
        seconds = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        found = IndexLag(events=events, seconds=seconds, tenants_behind=behind)
        self._lag = (loop.time(), found)
        return found

    async def watermark(self, tenant: TenantId) -> int:
        """The snapshot bound of an OpenSearch search: every event below it is searchable."""
        async with read_transaction(self._pool, tenant, timeout_ms=5000) as conn:
            next_seq, _ = await progress_store.progress(conn, tenant)
        return next_seq

    async def index_tenant(self, tenant: TenantId) -> IndexRun:
        async with tenant_transaction(self._pool, tenant) as conn:
            start = await progress_store.lock_progress(conn, tenant)
            if start is None:
                return IndexRun(tenant, 0, 0, 0, 0, skipped=True)
            head = await last_seq(conn, tenant)
            indexed = 0
            generation: int | None = None
            for _ in range(self._max_batches):
                if start > head:
                    break
                rows = await events_after(conn, tenant, start - 1, head, limit=self._batch_size)
                if generation is None:
                    # Asked under the tenant's lock: a rebuild moves the alias only while
                    # it holds every tenant's, so this run cannot write into a generation
                    # that stops being live before it commits.
                    generation = await self._index.ensure_template()
                await self._index.write(
                    [r.event for r in rows], generation=generation, refresh=False
                )
                indexed += len(rows)
                # Removed numbers leave gaps in what is read, never in what was committed:
                # a short batch means everything up to the head has been read.
                start = rows[-1].event.seq + 1 if len(rows) == self._batch_size else head + 1
                await progress_store.advance(conn, tenant, start)
            if generation is not None:  # something was written: searchable before commit
                await self._index.refresh(generation)
            ranges = await progress_store.pending_removals(conn, tenant, limit=_REMOVALS_PER_RUN)
            if ranges:
                await self._index.delete_ranges(tenant, ranges)
                await progress_store.mark_propagated(conn, tenant, [a for a, _ in ranges])
            behind = max(0, head + 1 - start)
            await self._observe(conn, tenant, start, behind)
        return IndexRun(tenant, indexed, len(ranges), start, behind)

    async def rebuild_tenant(
        self,
        tenant: TenantId,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        wait_seconds: float = 60.0,
    ) -> IndexRun:
        """Index *tenant*'s log again from PostgreSQL into the live generation (only the
        events whose ``timestamp`` lies in [*start*, *end*) when given) and delete every
        range ever removed: repairs an index that lost documents or kept removed ones, and
        indexes days restored from the archive (their old ``seq`` numbers are behind the
        follower).

        A repair in place, by design: the indices are shared by every tenant, so new
        indices for one tenant would mean copying all the others too; documents are
        overwritten under the same ids instead (never deleted first), so searches see at
        least what they saw before at every moment. Safe while ingest and searches go on:
        the live indexer skips the tenant while this run holds its progress row (waited
        for up to *wait_seconds* if a live run holds it now). *on_batch(done, total)*
        reports progress in ``seq`` numbers. A changed mapping needs :meth:`rebuild_all`.

        Refused (:class:`RebuildBusy`) while :meth:`rebuild_all` runs: a repair writes into
        the live generation, which that rebuild is about to retire, and the days it brings
        back (an archive restore) sit below what the rebuild's copies have already read, so
        they would be in neither generation after the swap. Run it again once the rebuild
        is done. Repairs of several tenants may run at once.
        """
        async with self._pool.connection() as guard:
            if not await progress_store.try_rebuild_lock(guard, shared=True):
                raise RebuildBusy("a rebuild of the whole search index is running")
            try:
                return await self._rebuild_tenant(tenant, start, end, on_batch, wait_seconds)
            finally:
                await progress_store.release_rebuild_lock(guard, shared=True)

    async def _rebuild_tenant(
        self,
        tenant: TenantId,
        start: datetime | None,
        end: datetime | None,
        on_batch: Callable[[int, int], None] | None,
        wait_seconds: float,
    ) -> IndexRun:
        deadline = asyncio.get_running_loop().time() + wait_seconds
        async with tenant_transaction(self._pool, tenant) as conn:
            while await progress_store.lock_progress(conn, tenant) is None:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"the indexer kept {tenant} busy for {wait_seconds} s")
                await asyncio.sleep(0.2)
            generation = await self._index.ensure_template()
            head = await last_seq(conn, tenant)
            at, indexed = 0, 0
            while at <= head:
                rows = await events_after(conn, tenant, at - 1, head, limit=self._batch_size)
                chosen = [r.event for r in rows if _within(r.event, start, end)]
                await self._index.write(chosen, generation=generation, refresh=False)
                indexed += len(chosen)
                at = rows[-1].event.seq + 1 if len(rows) == self._batch_size else head + 1
                if on_batch is not None:
                    on_batch(min(at, head + 1), head + 1)
            await self._index.refresh(generation)
            ranges = await removed_ranges(conn, tenant)
            await self._delete_from(tenant, ranges, None)
            # Flagged in one statement, as the swap flags them: this transaction commits
            # the flags together whether they are written per chunk or at once.
            await progress_store.mark_propagated(conn, tenant, [a for a, _ in ranges])
            if start is None and end is None:
                await progress_store.advance(conn, tenant, head + 1)
        return IndexRun(tenant, indexed, len(ranges), head + 1, 0)

    async def _delete_from(
        self, tenant: TenantId, ranges: list[tuple[int, int]], generation: int | None
    ) -> None:
        """Delete *tenant*'s *ranges* from *generation* (None: the live one), one
        delete-by-query per ``_REMOVALS_PER_RUN`` of them. Flagging them propagated is the
        caller's: only a delete from the live generation, or from one about to become it,
        may set the flag."""
        for chunk in _chunks(ranges):
            await self._index.delete_ranges(tenant, chunk, generation=generation)

    async def rebuild_all(
        self,
        *,
        on_progress: Callable[[int, int], None] | None = None,
        grace_seconds: float = 10.0,
    ) -> Rebuild:
        """Build a new generation of indices from PostgreSQL with the running code's
        template and mappings, then make it the one searches read, while ingest, the live
        indexer and searches go on.

        Only step 4 holds the tenants, and it indexes and deletes only what changed in the
        moments before it: its OpenSearch work does not grow with the size of the log or
        with the number of ranges ever removed (it still reads their list, and flags the
        few not flagged, in one statement each per tenant). :attr:`Rebuild.locked_events`
        and :attr:`Rebuild.locked_ranges` say what it handled.

        1. **Copy**, without holding any tenant: each tenant's log up to its head into
           the new generation (which no search reads: its template has no read alias),
           then a second pass for what was committed meanwhile. The live indexer goes on
           filling the live generation.
        2. **Delete the removed ranges**, without holding any tenant: after a refresh (so
           that delete-by-query finds the copy), every range removed from each tenant's log
           so far is deleted from the new generation, and remembered. Their
           ``search_propagated`` flags are left alone: they speak of the live generation,
           which this step does not touch.
        3. **Copy** again, without holding any tenant, what was committed during steps 1
           and 2, tenants created meanwhile included.
        4. **Catch up and swap**, in one PostgreSQL transaction: take every tenant's
           progress row (waiting for a live run to finish, up to
           ``database.statement_timeout_ms``, else the rebuild fails before the swap and
           can be run again; the live indexer skips held tenants), index what the copies
           have not seen up to the head, delete from the new generation the removed ranges
           step 2 did not (recorded since), flag every listed range propagated, set each
           progress to the head, then move the read alias in one ``_aliases`` request and
           commit. Searches read one generation or the other whole; their watermark moves
           with the commit, after the new generation holds everything below it.
        5. After *grace_seconds* (searches already running on the old indices finish),
           drop the old generation, and the indices of the layout before generations if
           an upgrade left any (the swap moved the alias off them too).

        Nothing is lost (every event below each head is indexed by a copy or by step 4;
        days an archive restore brings back meanwhile return under ``seq`` numbers the
        copies have passed, and the repair every restore needs, :meth:`rebuild_tenant`, is
        refused until the swap, after which it writes them into the new generation),
        nothing doubled (a document's id is its tenant and event id), nothing brought back
        after its removal: an event removed before a copy read it is not read; one a copy
        read before its removal committed is in a range step 2 reads afterwards, or, if
        step 2 read the ranges first, one that step 4 finds missing from step 2's and
        deletes, after a refresh of what step 3 or its own catch-up wrote. A removal
        committed after step 4 read a tenant's ranges is not flagged, so the live indexer
        deletes it from the new generation after the swap, as it would from any live one.

        One rebuild at a time (an advisory lock; a second one raises
        :class:`RebuildBusy`). If it stops before the swap, the live generation is
        untouched (and so are the flags) and the next rebuild removes what this one left.
        *on_progress(done, total)* counts events copied.
        """
        async with self._pool.connection() as guard:
            if not await progress_store.try_rebuild_lock(guard):
                raise RebuildBusy("another rebuild of the search index is running")
            try:
                return await self._rebuild_all(on_progress, grace_seconds)
            finally:
                await progress_store.release_rebuild_lock(guard)

    async def _rebuild_all(
        self, on_progress: Callable[[int, int], None] | None, grace_seconds: float
    ) -> Rebuild:
        live, new = await self._index.begin_generation()
        copied: dict[TenantId, int] = {}
        heads: dict[TenantId, int] = {}
        for tenant in await self._tenants():
            async with tenant_transaction(self._pool, tenant) as conn:
                heads[tenant] = await last_seq(conn, tenant) + 1
        done, total = 0, sum(heads.values())

        def report(n: int) -> None:
            nonlocal done
            done += n
            if on_progress is not None:
                on_progress(done, max(total, done))

        for tenant, head in heads.items():  # 1. copy
            copied[tenant] = await self._copy(tenant, 0, head - 1, new, report)
        for tenant in heads:  # ... and what came meanwhile
            copied[tenant] = await self._copy(tenant, copied[tenant], None, new, report)
        await self._index.refresh(new)  # the copy is what the removals below must find
        deleted = {tenant: await self._delete_removed(tenant, new) for tenant in heads}  # 2.
        for tenant in await self._tenants():  # 3. what came during 1 and 2, new tenants too
            copied[tenant] = await self._copy(tenant, copied.get(tenant, 0), None, new, report)
        await self._index.refresh(new)  # what step 4 deletes may be in this last copy
        removed = locked_events = locked_ranges = 0
        async with self._pool.connection() as conn, conn.transaction():  # 4. catch up, swap
            for tenant in await self._tenants(conn):  # tenants created meanwhile too
                await set_tenant(conn, tenant)
                await progress_store.wait_progress(conn, tenant)
                head = await last_seq(conn, tenant)
                at = copied.get(tenant, 0)
                while at <= head:
                    rows = await events_after(conn, tenant, at - 1, head, limit=self._batch_size)
                    await self._index.write([r.event for r in rows], generation=new, refresh=False)
                    report(len(rows))
                    locked_events += len(rows)
                    at = rows[-1].event.seq + 1 if len(rows) == self._batch_size else head + 1
                ranges = await removed_ranges(conn, tenant)
                # Compared as whole ranges: one that an archive restore split since step 2
                # comes back as new pieces, deleted again (a delete is idempotent).
                fresh = [r for r in ranges if r not in deleted.get(tenant, set())]
                if fresh and at > copied.get(tenant, 0):  # the catch-up is to be found too
                    await self._index.refresh(new)
                await self._delete_from(tenant, fresh, new)
                # Now, and not in step 2: the flag says the live generation no longer holds
                # the range, and the new one is live from this commit on, holding none of
                # these (step 2 or just above). Flagged in step 2, a rebuild failing before
                # the swap would leave ranges the old generation still holds flagged, and
                # the live indexer would never delete them from it.
                await progress_store.mark_propagated(conn, tenant, [a for a, _ in ranges])
                await progress_store.advance(conn, tenant, head + 1)
                removed += len(ranges)
                locked_ranges += len(fresh)
            await self._index.refresh(new)  # everything searchable before the alias moves
            await self._index.swap(live, new)
        if live:  # 5.
            await asyncio.sleep(grace_seconds)
            await self._index.drop_generation(live)
        await self._index.drop_legacy()  # the layout before generations, off the alias now
        return Rebuild(
            generation=new,
            replaced=live,
            tenants=len(copied),
            removed_ranges=removed,
            locked_events=locked_events,
            locked_ranges=locked_ranges,
        )

    async def _delete_removed(self, tenant: TenantId, generation: int) -> set[tuple[int, int]]:
        """Delete every range removed from *tenant*'s log so far from *generation*, holding
        nothing (the ranges are read in a short transaction of their own); the ranges
        deleted. The caller refreshed *generation* first, so what it wrote is found."""
        async with tenant_transaction(self._pool, tenant) as conn:
            ranges = await removed_ranges(conn, tenant)
        await self._delete_from(tenant, ranges, generation)
        return set(ranges)

    async def _copy(
        self,
        tenant: TenantId,
        start: int,
        upto: int | None,
        generation: int,
        report: Callable[[int], None],
    ) -> int:
        """Index *tenant*'s events from ``seq`` *start* through *upto* (None: the head
        now) into *generation*, one short transaction a batch; the ``seq`` to go on
        from."""
        while True:
            async with tenant_transaction(self._pool, tenant) as conn:
                head = await last_seq(conn, tenant) if upto is None else upto
                if start > head:
                    return start
                rows = await events_after(conn, tenant, start - 1, head, limit=self._batch_size)
            await self._index.write([r.event for r in rows], generation=generation, refresh=False)
            report(len(rows))
            if len(rows) < self._batch_size:
                return head + 1
            start = rows[-1].event.seq + 1

    async def _tenants(self, conn: Connection | None = None) -> list[TenantId]:
        if conn is None:
            async with self._pool.connection() as own:
                tenants = await list_tenants(own)
        else:
            tenants = await list_tenants(conn)
        return [for_system(t.id, reason="the indexer follows every tenant's log") for t in tenants]

    async def _observe(self, conn: Connection, tenant: TenantId, start: int, behind: int) -> None:
        if self._metrics is None:
            return
        label = self._metrics.tenant_label(tenant)
        self._metrics.index_lag_events.labels(label).set(behind)
        lag_seconds = 0.0
        if behind:
            oldest = await events_after(conn, tenant, start - 1, start, limit=1)
            if oldest:
                received = oldest[0].event.event.received_at
                lag_seconds = (datetime.now(UTC) - received).total_seconds()
        self._metrics.index_lag_seconds.labels(label).set(lag_seconds)

    async def drop_empty_months(self) -> list[str]:
        """Drop the monthly indices, before the current month, that retention and cleanup
        have emptied (a shared month holds every tenant's events, so it is dropped when the
        last of them is gone, not by any one tenant's retention)."""
        now = datetime.now(UTC)
        this_month = datetime(now.year, now.month, 1, tzinfo=UTC)
        return await self._index.drop_empty_months(this_month)

    async def index_all(self) -> list[IndexRun]:
        """One run for every tenant (the periodic task).

        A tenant whose run fails does not hold up the others: the failure is logged and the
        pass goes on with the next tenant (the failed run rolled back, so its progress did
        not move and the next pass repeats it). If any failed, the pass ends by raising
        :class:`IndexingIncomplete` with the runs that went through and every failure, so
        the job that ran it still fails and says why. When the cluster itself is
        unavailable to several tenants in a row, the pass stops there instead of waiting
        out the request timeout once per tenant; the tenants not reached count as not
        run, not as failed."""
        runs: list[IndexRun] = []
        failures: dict[TenantId, Exception] = {}
        unavailable = 0
        for tenant in await self._tenants():
            try:
                runs.append(await self.index_tenant(tenant))
            except Exception as exc:
                log.warning("indexing %s failed: %s: %s", tenant, type(exc).__name__, exc)
                failures[tenant] = exc
                unavailable = unavailable + 1 if isinstance(exc, SearchUnavailable) else 0
                if unavailable >= _UNAVAILABLE_IN_A_ROW:
                    break
            else:
                unavailable = 0
        if failures:
            raise IndexingIncomplete(runs, failures) from next(iter(failures.values()))
        return runs
