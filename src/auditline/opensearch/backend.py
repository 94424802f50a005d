"""``SearchBackend`` over the OpenSearch read alias.

Snapshots: a first page's watermark is the tenant's indexing progress (every event with
``seq`` below it is indexed and visible, see migration 0018), supplied by the composition
root, since this layer does not read PostgreSQL. Later pages keep that watermark, so
paging sees one fixed set whatever is indexed meanwhile, as on PostgreSQL. An event that
retention removed stays visible here until the indexer has propagated the removal (within
its interval).

Order and positions are exact: the sort is (microseconds, id), the same keys as
PostgreSQL's ``(timestamp, id)``, and ``search_after`` continues strictly after a
position. Every request names the tenant twice: as routing (one shard per month) and as
the filter the compiler puts first (the wall; routing alone would not be one, as shards
hold many tenants).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from opensearchpy.exceptions import NotFoundError

from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
from auditline.opensearch.client import OpenSearchIndex, guarded
from auditline.opensearch.compiler import search_after, search_filter, sort
from auditline.opensearch.documents import from_document
from auditline.search.backend import Unsupported
from auditline.search.model import (
    FacetRequest,
    Facets,
    Interval,
    Order,
    Page,
    PageRequest,
    Position,
    SearchQuery,
    Stats,
    Total,
)

Watermark = Callable[[TenantId], Awaitable[int]]
"""The tenant's indexing progress: every event with ``seq`` below it is searchable."""


class OpenSearchSearch:
    """Searches, exports and counts on OpenSearch; statistics are not answered here (the
    service routes them to PostgreSQL's rollups)."""

    def __init__(
        self, index: OpenSearchIndex, watermark: Watermark, *, exact_total_limit: int = 10_000
    ) -> None:
        self._index = index
        self._watermark = watermark
        self._exact_total_limit = exact_total_limit

    async def _search(self, tenant: TenantId, body: dict[str, Any]) -> dict[str, Any]:
        client = self._index.client
        try:
            answer: dict[str, Any] = await guarded(
                client.search(index=self._index.names.alias, body=body, routing=tenant)
            )
        except NotFoundError:  # no index yet: nothing indexed anywhere
            return {"hits": {"hits": [], "total": {"value": 0, "relation": "eq"}}}
        return answer

    async def search(self, tenant: TenantId, query: SearchQuery, page: PageRequest) -> Page:
        watermark = page.watermark
        if watermark is None:
            watermark = await self._watermark(tenant)
        body: dict[str, Any] = {
            "query": search_filter(tenant, query, watermark=watermark),
            "sort": sort(page.order),
            "size": page.limit + 1,  # one more tells whether a next page exists
            "track_total_hits": self._exact_total_limit if page.include_total else False,
        }
        if page.after is not None:
            body["search_after"] = search_after(page.after)
        answer = await self._search(tenant, body)
        hits = answer["hits"]["hits"]
        items = [from_document(h["_source"]) for h in hits[: page.limit]]
        nxt = None
        if len(hits) > page.limit:
            last = items[-1].event
            nxt = Position(last.timestamp, last.id)
        total = None
        if page.include_total:
            found = answer["hits"]["total"]
            # OpenSearch says "eq" or "gte", as Total does.
            total = Total(int(found["value"]), "eq" if found["relation"] == "eq" else "gte")
        return Page(items=items, next=nxt, watermark=watermark, total=total)

    async def export(
        self, tenant: TenantId, query: SearchQuery, *, order: Order, batch_size: int
    ) -> AsyncIterator[list[StoredEvent]]:
        request = PageRequest(limit=batch_size, order=order)
        while True:
            page = await self.search(tenant, query, request)
            if page.items:
                yield page.items
            if page.next is None:
                return
            request = replace(request, after=page.next, watermark=page.watermark)

    async def count(self, tenant: TenantId, query: SearchQuery) -> int:
        watermark = await self._watermark(tenant)
        body = {"query": search_filter(tenant, query, watermark=watermark)}
        client = self._index.client
        try:
            answer = await guarded(
                client.count(index=self._index.names.alias, body=body, routing=tenant)
            )
        except NotFoundError:
            return 0
        return int(answer["count"])

    async def facets(
        self, tenant: TenantId, query: SearchQuery, request: FacetRequest, *, watermark: int
    ) -> Facets:
        """Not yet: terms aggregations would answer them (``search.routing`` asks
        PostgreSQL meanwhile, with this backend's watermark, so the set is the same)."""
        raise Unsupported("facets are answered by PostgreSQL (search.routing)")

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
        raise NotImplementedError("statistics are answered by PostgreSQL (search.routing)")
