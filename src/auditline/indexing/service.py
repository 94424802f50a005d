"""The indexer: follows each tenant's log by ``seq`` into OpenSearch, then propagates
removals.

One run for a tenant, in one PostgreSQL transaction that holds the tenant's progress row:

1. read the log head; then, batch by batch, the events with ``progress <= seq < head`` (in
   ``seq`` order, through ``event_ids``), index them in one bulk request that waits for
   the refresh, and move the progress past the batch. Sequence numbers are gap-free and
   committed in order, so "everything below the progress is indexed" holds after every
   batch; a crash repeats at most one batch, and indexing is idempotent (a document's id
   is its tenant and event id).
2. delete from the index the ``removed_ranges`` not yet propagated, and flag them. This
   comes after step 1 read its events, so a removal committed meanwhile is deleted after
   the bulk that may have indexed it; one committed before was never read.

Access records are events of the tenant's log like any other, so they are indexed too
(searches leave them out unless asked, on both backends).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from psycopg_pool import AsyncConnectionPool

from auditline.domain.tenants import TenantId
from auditline.metrics import Metrics
from auditline.opensearch.client import OpenSearchIndex
from auditline.storage import search_index as progress_store
from auditline.storage.database import Connection, read_transaction, tenant_transaction
from auditline.storage.retention import removed_ranges
from auditline.storage.stream import events_after, last_seq
from auditline.storage.tenants import list_tenants
from auditline.tenancy.scope import for_system

_REMOVALS_PER_RUN: Final = 500


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

    @property
    def index(self) -> OpenSearchIndex:
        return self._index

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
            for _ in range(self._max_batches):
                if start > head:
                    break
                rows = await events_after(conn, tenant, start - 1, head, limit=self._batch_size)
                await self._index.write([r.event for r in rows])
                indexed += len(rows)
                # Removed numbers leave gaps in what is read, never in what was committed:
                # a short batch means everything up to the head has been read.
                start = rows[-1].event.seq + 1 if len(rows) == self._batch_size else head + 1
                await progress_store.advance(conn, tenant, start)
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
        on_batch: Callable[[int, int], None] | None = None,
        wait_seconds: float = 60.0,
    ) -> IndexRun:
        """Index *tenant*'s whole log again from PostgreSQL and delete every range ever
        removed: repairs an index that lost documents or kept removed ones.

        Safe while ingest and searches go on: documents are overwritten in place (the
        same ids), and the live indexer skips the tenant while this run holds its
        progress row (waited for up to *wait_seconds* if a live run holds it now).
        *on_batch(done, total)* reports progress. It does not change mappings: a new
        template needs new indices (see docs/operations.md, "Rebuilding").
        """
        deadline = asyncio.get_running_loop().time() + wait_seconds
        async with tenant_transaction(self._pool, tenant) as conn:
            while await progress_store.lock_progress(conn, tenant) is None:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"the indexer kept {tenant} busy for {wait_seconds} s")
                await asyncio.sleep(0.2)
            head = await last_seq(conn, tenant)
            start, indexed = 0, 0
            while start <= head:
                rows = await events_after(conn, tenant, start - 1, head, limit=self._batch_size)
                await self._index.write([r.event for r in rows])
                indexed += len(rows)
                start = rows[-1].event.seq + 1 if len(rows) == self._batch_size else head + 1
                if on_batch is not None:
                    on_batch(min(start, head + 1), head + 1)
            ranges = await removed_ranges(conn, tenant)
            for at in range(0, len(ranges), _REMOVALS_PER_RUN):
                chunk = ranges[at : at + _REMOVALS_PER_RUN]
                await self._index.delete_ranges(tenant, chunk)
                await progress_store.mark_propagated(conn, tenant, [a for a, _ in chunk])
            await progress_store.advance(conn, tenant, head + 1)
        return IndexRun(tenant, indexed, len(ranges), head + 1, 0)

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

    async def index_all(self) -> list[IndexRun]:
        """One run for every tenant (the periodic task)."""
        async with self._pool.connection() as conn:
            tenants = await list_tenants(conn)
        runs = []
        for tenant in tenants:
            scoped = for_system(tenant.id, reason="the indexer follows every tenant's log")
            runs.append(await self.index_tenant(scoped))
        return runs
