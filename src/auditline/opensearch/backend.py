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
from typing import Any

from opensearchpy.exceptions import NotFoundError

from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
from auditline.opensearch.client import OpenSearchIndex, guarded
from auditline.opensearch.compiler import search_after, search_filter, sort
from auditline.opensearch.documents import from_document
from auditline.search.model import (
    Count,
    Facet,
    FacetRequest,
    Facets,
    Order,
    Page,
    PageRequest,
    Position,
    SearchQuery,
    Total,
    ranked,
)

Watermark = Callable[[TenantId], Awaitable[int]]
"""The tenant's indexing progress: every event with ``seq`` below it is searchable."""


class OpenSearchSearch:
    """Searches, exports, counts and facets on OpenSearch. Not a ``StatsBackend``:
    statistics come from PostgreSQL's rollups whatever answers searches."""

    def __init__(
        self,
        index: OpenSearchIndex,
        watermark: Watermark,
        *,
        exact_total_limit: int = 50_000,
        facet_budget_ms: int = 200,
    ) -> None:
        self._index = index
        self._watermark = watermark
        self._exact_total_limit = exact_total_limit
        self._facet_budget_ms = facet_budget_ms

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
        """Terms aggregations (most frequent first, ties by value: keywords compare as
        UTF-8 bytes, which is code-point order, as PostgreSQL's answer is ranked) plus a
        ``missing`` count per field for events without it (``None``), merged here.

        A field's counts are ``eq`` when OpenSearch reports no possible error
        (``doc_count_error_upper_bound`` 0: each monthly index returned every value it
        holds beyond the top, or the values were few); else ``gte`` (each shard's top
        only). An answer cut by the search ``timeout`` (``facet_budget_ms``) is partial
        (every count ``gte``; ``sampled`` stays None: OpenSearch does not say how many
        matches were counted).

        *watermark* is the page's, which PostgreSQL may have set (it answered the page
        after a fallback): its log head can be beyond what is indexed. The counts are then
        over the events below this tenant's indexing progress only, and every facet is
        ``gte``; within it they are as exact as ever."""
        indexed = await self._watermark(tenant)
        lowered = indexed < watermark
        watermark = min(watermark, indexed)
        aggs: dict[str, Any] = {}
        for f in request.fields:
            aggs[f] = {
                "terms": {
                    "field": f,
                    "size": request.size,
                    "order": [{"_count": "desc"}, {"_key": "asc"}],
                }
            }
            aggs[f"{f}__missing"] = {"missing": {"field": f}}  # fmt: skip
        body: dict[str, Any] = {
            "query": search_filter(tenant, query, watermark=watermark),
            "size": 0,
            "track_total_hits": False,
            "timeout": f"{self._facet_budget_ms}ms",
            "aggs": aggs,
        }
        answer = await self._search(tenant, body)
        found = answer.get("aggregations", {})
        partial = bool(answer.get("timed_out", False))
        out = []
        for f in request.fields:
            terms = found.get(f, {"buckets": [], "doc_count_error_upper_bound": 0})
            counts = [Count(str(b["key"]), int(b["doc_count"])) for b in terms["buckets"]]
            missing = int(found.get(f"{f}__missing", {}).get("doc_count", 0))
            if missing:
                counts.append(Count(None, missing))
            counts = ranked(counts)
            bounded = int(terms.get("doc_count_error_upper_bound", 0)) == 0
            exact = bounded and not partial and not lowered
            out.append(Facet(f, counts[: request.size], "eq" if exact else "gte"))
        return Facets(out, partial=partial)
