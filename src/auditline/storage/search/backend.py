"""The PostgreSQL search backend: the default, answering from the source of truth.

Every read runs in a ``REPEATABLE READ, READ ONLY`` transaction with the tenant setting
made first, so row-level security applies and the watermark (the tenant's log head) and
the rows come from one snapshot, and with a statement timeout (``reads.*`` settings: one
for searches, gets and statistics, a longer one per export batch). The SQL and the plan
choices live beside this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg_pool import AsyncConnectionPool

from auditline.config import ReadSettings, SearchSettings
from auditline.domain.access import AccessLog
from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
from auditline.search.cursor import CursorCodec
from auditline.search.export import ExportFormat
from auditline.search.model import (
    FacetRequest,
    Facets,
    Highlight,
    Interval,
    Order,
    Page,
    PageRequest,
    SearchQuery,
    Stats,
)
from auditline.search.service import SearchService
from auditline.storage.database import Connection, read_transaction
from auditline.storage.events import get_event
from auditline.storage.search import facets as facet_store
from auditline.storage.search import highlight as highlight_store
from auditline.storage.search import pages as store
from auditline.storage.search import stats as stats_store


class PostgresSearch:
    """``SearchBackend``, ``StatsBackend``, ``EncodingBackend``, ``EventLookup`` and
    ``Highlighter`` over the events table."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        tuning: store.SearchTuning | None = None,
        *,
        timeout_ms: int = 5000,
        export_timeout_ms: int = 30_000,
    ) -> None:
        self._pool = pool
        self._tuning = tuning or store.SearchTuning()
        self._timeout_ms = timeout_ms
        self._export_timeout_ms = export_timeout_ms

    def _snapshot(
        self, tenant: TenantId, *, timeout_ms: int | None = None
    ) -> AbstractAsyncContextManager[Connection]:
        return read_transaction(self._pool, tenant, timeout_ms=timeout_ms or self._timeout_ms)

    async def get(
        self, tenant: TenantId, event_id: UUID, *, only_user: str | None = None
    ) -> StoredEvent | None:
        async with self._snapshot(tenant) as conn:
            return await get_event(conn, tenant, event_id, user_id=only_user)

    async def search(self, tenant: TenantId, query: SearchQuery, page: PageRequest) -> Page:
        return await self._page(tenant, query, page)

    async def _page(
        self,
        tenant: TenantId,
        query: SearchQuery,
        page: PageRequest,
        *,
        timeout_ms: int | None = None,
    ) -> Page:
        async with self._snapshot(tenant, timeout_ms=timeout_ms) as conn:
            watermark = page.watermark
            if watermark is None:
                watermark = await store.read_watermark(conn, tenant)
            return await store.search_page(
                conn, tenant, query, page, watermark=watermark, tuning=self._tuning
            )

    async def export(
        self, tenant: TenantId, query: SearchQuery, *, order: Order, batch_size: int
    ) -> AsyncIterator[list[StoredEvent]]:
        # One short transaction per batch: nothing holds a snapshot or a pooled connection
        # while the client reads, and the watermark of the first batch keeps the set fixed.
        request = PageRequest(limit=batch_size, order=order)
        while True:
            page = await self._page(tenant, query, request, timeout_ms=self._export_timeout_ms)
            if page.items:
                yield page.items
            if page.next is None:
                return
            request = replace(request, after=page.next, watermark=page.watermark)

    async def export_lines(
        self,
        tenant: TenantId,
        query: SearchQuery,
        *,
        fmt: ExportFormat,
        order: Order,
        batch_size: int,
    ) -> AsyncIterator[list[str]]:
        """Like :meth:`export`, with each event already encoded by PostgreSQL.

        One CSV record or JSON document per event, the same values and spellings as
        ``search.export.encode`` makes from domain objects (the tests compare them), at a
        fraction of the cost: the rows never become Python objects.
        """
        request = PageRequest(limit=batch_size, order=order)
        watermark: int | None = None
        while True:
            async with self._snapshot(tenant, timeout_ms=self._export_timeout_ms) as conn:
                if watermark is None:
                    watermark = await store.read_watermark(conn, tenant)
                lines, nxt = await store.export_lines(
                    conn, tenant, query, request, fmt=fmt, watermark=watermark,
                    tuning=self._tuning,
                )  # fmt: skip
            if lines:
                yield lines
            if nxt is None:
                return
            request = replace(request, after=nxt)

    async def count(self, tenant: TenantId, query: SearchQuery) -> int:
        # For an export's progress (the CLI): bounded as an export batch is, not as a page.
        async with self._snapshot(tenant, timeout_ms=self._export_timeout_ms) as conn:
            watermark = await store.read_watermark(conn, tenant)
            total = await store.count_matches(conn, tenant, query, watermark, limit=None)
        return total.value

    async def highlight(
        self, tenant: TenantId, query: SearchQuery, events: Sequence[StoredEvent]
    ) -> list[Highlight | None]:
        async with self._snapshot(tenant) as conn:
            return await highlight_store.highlight(conn, query.q, events)

    async def facets(
        self, tenant: TenantId, query: SearchQuery, request: FacetRequest, *, watermark: int
    ) -> Facets:
        async with self._snapshot(tenant) as conn:
            return await facet_store.facets(
                conn, tenant, query, request, watermark=watermark, tuning=self._tuning
            )

    async def stats(
        self,
        tenant: TenantId,
        query: SearchQuery,
        *,
        start: datetime,
        end: datetime,
        interval: Interval,
        top: int,
    ) -> Stats:
        async with self._snapshot(tenant) as conn:
            return await stats_store.stats(
                conn, tenant, query, start=start, end=end, interval=interval, top=top
            )


def postgres_search_service(
    pool: AsyncConnectionPool[Connection],
    settings: SearchSettings,
    key: Ed25519PrivateKey,
    access: AccessLog,
    reads: ReadSettings | None = None,
) -> SearchService:
    """The default search service: PostgreSQL, cursors keyed from the server's signing key.

    *pool* is the read pool; every statement runs under the read statement timeouts."""
    reads = reads or ReadSettings()
    tuning = store.SearchTuning(
        probe_rows=settings.probe_rows,
        probe_max_rows=settings.probe_max_rows,
        exact_total_limit=settings.exact_total_limit,
        total_budget_ms=settings.total_budget_ms,
        facet_budget_ms=settings.facet_budget_ms,
        facet_sample_rows=settings.facet_sample_rows,
    )
    backend = PostgresSearch(
        pool, tuning, timeout_ms=reads.statement_timeout_ms,
        export_timeout_ms=reads.export_statement_timeout_ms,
    )  # fmt: skip
    return SearchService(
        backend,
        backend,
        CursorCodec.from_signing_key(key),
        settings,
        access,
        stats=backend,
        highlighter=backend,
    )
