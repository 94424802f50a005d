"""Search as the API and the CLI use it: a backend plus cursors and limits.

Thin on purpose: authorization happens before (``Principal.authorize``), recording the
access happens in the caller (it knows the request), and the backend does the reading.
What lives here is what is the same for every backend: turning an opaque cursor into a
position and back, and clamping sizes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from auditline.config import SearchSettings
from auditline.domain.events import StoredEvent, TenantId
from auditline.search.backend import EncodingBackend, SearchBackend
from auditline.search.cursor import CursorCodec, binding
from auditline.search.export import ExportFormat, encode, frame
from auditline.search.model import Interval, Order, PageRequest, SearchQuery, Stats, Total


@dataclass(frozen=True, slots=True)
class SearchResult:
    items: list[StoredEvent]
    next_cursor: str | None
    total: Total | None


class SearchService:
    def __init__(
        self, backend: SearchBackend, cursors: CursorCodec, settings: SearchSettings
    ) -> None:
        self.backend = backend
        self.cursors = cursors
        self.settings = settings

    async def search(
        self,
        tenant: TenantId,
        query: SearchQuery,
        *,
        limit: int | None,
        order: Order,
        cursor: str | None,
        include_total: bool,
    ) -> SearchResult:
        """One page; raises ``InvalidCursor`` for a cursor not issued for this very query."""
        bound_to = binding(tenant, query, order)
        after, watermark = None, None
        if cursor is not None:
            after, watermark = self.cursors.decode(cursor, bound_to)
        page = await self.backend.search(
            tenant,
            query,
            PageRequest(
                limit=min(limit or self.settings.default_limit, self.settings.max_limit),
                order=order,
                after=after,
                watermark=watermark,
                include_total=include_total,
            ),
        )
        next_cursor = None
        if page.next is not None:
            next_cursor = self.cursors.encode(page.next, page.watermark, bound_to)
        return SearchResult(items=page.items, next_cursor=next_cursor, total=page.total)

    def export(
        self, tenant: TenantId, query: SearchQuery, *, order: Order = "asc"
    ) -> AsyncIterator[list[StoredEvent]]:
        return self.backend.export(
            tenant, query, order=order, batch_size=self.settings.export_batch_size
        )

    def export_file(
        self,
        tenant: TenantId,
        query: SearchQuery,
        *,
        fmt: ExportFormat,
        order: Order = "asc",
        on_batch: Callable[[int], None] | None = None,
    ) -> AsyncIterator[bytes]:
        """The export file, chunk by chunk; the first chunk comes after the first read."""
        size = self.settings.export_batch_size
        if isinstance(self.backend, EncodingBackend):
            lines = self.backend.export_lines(tenant, query, fmt=fmt, order=order, batch_size=size)
            return frame(lines, fmt, on_batch=on_batch)
        batches = self.backend.export(tenant, query, order=order, batch_size=size)
        return encode(batches, fmt, on_batch=on_batch)

    async def count(self, tenant: TenantId, query: SearchQuery) -> int:
        return await self.backend.count(tenant, query)

    async def stats(
        self,
        tenant: TenantId,
        query: SearchQuery,
        *,
        start: datetime,
        end: datetime,
        interval: Interval,
    ) -> Stats:
        return await self.backend.stats(
            tenant, query, start=start, end=end, interval=interval, top=self.settings.stats_top
        )
