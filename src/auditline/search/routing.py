"""Which backend answers a search: chosen per query, with a fallback when one is down.

Configuration picks a backend for searches without full-text terms (``filter_backend``)
and for searches with them (``text_backend``) separately: OpenSearch pays off for full
text in large tenants, while PostgreSQL's tenant-first indexes already answer structured
filters in about a millisecond. Statistics are not routed: only PostgreSQL answers them
(``StatsBackend``, given to the search service separately). When the chosen backend
raises :class:`SearchUnavailable`, the search is asked of the primary instead
(``on_unavailable = postgres``) or the error propagates to become a 503 with
``Retry-After`` (``503``).

Cursors stay valid across backends: a position is (timestamp, id) in either, and a
watermark from OpenSearch (its indexing progress) is at most PostgreSQL's log head, so
PostgreSQL answering a later page sees the same fixed set, or a subset of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
from auditline.search.backend import SearchBackend, SearchUnavailable
from auditline.search.model import (
    FacetRequest,
    Facets,
    Order,
    Page,
    PageRequest,
    SearchQuery,
)
from auditline.search.query import Text, walk


def has_text(query: SearchQuery) -> bool:
    """Whether ``q`` holds a full-text term anywhere (negated ones too)."""
    return query.q is not None and any(isinstance(n, Text) for n in walk(query.q))


class RoutedSearch:
    """``SearchBackend`` that hands each query to the backend configured for its kind."""

    def __init__(
        self,
        primary: SearchBackend,
        *,
        filters: SearchBackend | None = None,
        text: SearchBackend | None = None,
        fallback: bool = True,
        on_fallback: Callable[[str], None] | None = None,
    ) -> None:
        """*primary* (PostgreSQL) answers every kind no other backend is given for, and,
        with *fallback*, whatever another backend could not answer; *on_fallback* is told
        the operation each time (a metric)."""
        self.primary = primary
        self._filters = filters or primary
        self._text = text or primary
        self._fallback = fallback
        self._on_fallback = on_fallback

    def choose(self, query: SearchQuery) -> SearchBackend:
        return self._text if has_text(query) else self._filters

    def _falls_back(self, chosen: SearchBackend, operation: str) -> bool:
        if chosen is self.primary or not self._fallback:
            return False
        if self._on_fallback is not None:
            self._on_fallback(operation)
        return True

    async def search(self, tenant: TenantId, query: SearchQuery, page: PageRequest) -> Page:
        chosen = self.choose(query)
        try:
            return await chosen.search(tenant, query, page)
        except SearchUnavailable:
            if not self._falls_back(chosen, "search"):
                raise
        return await self.primary.search(tenant, query, page)

    async def export(
        self, tenant: TenantId, query: SearchQuery, *, order: Order, batch_size: int
    ) -> AsyncIterator[list[StoredEvent]]:
        """Falls back only before the first batch: once events have been sent, switching
        backends could repeat or skip some, so a later failure ends the export."""
        chosen = self.choose(query)
        batches = chosen.export(tenant, query, order=order, batch_size=batch_size)
        try:
            first = await anext(batches, None)
        except SearchUnavailable:
            if not self._falls_back(chosen, "export"):
                raise
            async for batch in self.primary.export(
                tenant, query, order=order, batch_size=batch_size
            ):
                yield batch
            return
        if first is None:
            return
        yield first
        async for batch in batches:
            yield batch

    async def count(self, tenant: TenantId, query: SearchQuery) -> int:
        chosen = self.choose(query)
        try:
            return await chosen.count(tenant, query)
        except SearchUnavailable:
            if not self._falls_back(chosen, "count"):
                raise
        return await self.primary.count(tenant, query)

    async def facets(
        self, tenant: TenantId, query: SearchQuery, request: FacetRequest, *, watermark: int
    ) -> Facets:
        """From the backend chosen for the query; from the primary when that one is
        unavailable and the configuration falls back, as for searches. The
        watermark keeps the set the same whoever answers: OpenSearch's is its indexing
        progress, at most PostgreSQL's log head."""
        chosen = self.choose(query)
        try:
            return await chosen.facets(tenant, query, request, watermark=watermark)
        except SearchUnavailable:
            if not self._falls_back(chosen, "facets"):
                raise
        return await self.primary.facets(tenant, query, request, watermark=watermark)
