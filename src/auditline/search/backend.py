"""The search backend interface: what every implementation answers, in domain terms.

PostgreSQL (``storage.search.backend``) is the default and the source of truth; the OpenSearch
backend implements the same protocol. Callers pass filters, a parsed query (the AST, never
a backend-specific string) and keyset positions, and get domain objects back, so the two
backends are interchangeable behind the API, the export and the CLI, and can be tested
against each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable
from uuid import UUID

from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
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


class SearchUnavailable(RuntimeError):
    """The backend cannot answer now (unreachable, overloaded, timed out): nothing was
    read. The service falls back to PostgreSQL or answers 503 with ``Retry-After``, as
    configured (``search.on_unavailable``)."""


class SearchBackend(Protocol):
    async def search(self, tenant: TenantId, query: SearchQuery, page: PageRequest) -> Page:
        """One page in (timestamp, id) order.

        Guarantees: every page after the first is restricted to ``seq < page.watermark``
        (the watermark the first page returned), so paging a result set with the returned
        positions yields every matching event that existed when paging began exactly once,
        whatever is written meanwhile.
        """
        ...

    def export(
        self, tenant: TenantId, query: SearchQuery, *, order: Order, batch_size: int
    ) -> AsyncIterator[list[StoredEvent]]:
        """Every matching event, in batches, with the same snapshot guarantee as paging.

        Memory is bounded by *batch_size*; no transaction stays open between batches.
        """
        ...

    async def count(self, tenant: TenantId, query: SearchQuery) -> int:
        """The exact number of matching events (may be slow for very large results)."""
        ...

    async def facets(
        self, tenant: TenantId, query: SearchQuery, request: FacetRequest, *, watermark: int
    ) -> Facets:
        """The top values of each requested field among the matches with ``seq <
        watermark`` (the set the first page saw), every count labelled; bounded in time
        (``Facets.partial`` says when not every match was counted)."""
        ...


class StatsBackend(Protocol):
    """Statistics: counts over time, by severity and action, and top lists.

    Not part of :class:`SearchBackend`: only PostgreSQL answers them, from its hourly
    rollups (they count hours, not events; see ``docs/architecture.md``), so the
    OpenSearch backend does not claim to. The search service is given its statistics
    backend separately.
    """

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
        """Counts over [start, end) for the events matching *query*."""
        ...


class EventLookup(Protocol):
    """One event by id, from the source of truth (PostgreSQL, whatever backend searches)."""

    async def get(
        self, tenant: TenantId, event_id: UUID, *, only_user: str | None = None
    ) -> StoredEvent | None:
        """The event, or None when it does not exist *or* (with *only_user*) that user did
        not act in it."""
        ...


class Highlighter(Protocol):
    """Marks the matched words of a page's events (PostgreSQL does, whichever backend
    found them: its parser and dictionaries define what full text matches)."""

    async def highlight(
        self, tenant: TenantId, query: SearchQuery, events: Sequence[StoredEvent]
    ) -> list[Highlight | None]:
        """One entry per event, in order: None where no word of ``q`` matched."""
        ...


@runtime_checkable
class EncodingBackend(Protocol):
    """Optional: a backend that can encode export lines itself (PostgreSQL does).

    Each yielded list holds one encoded event per item (a CSV record without its line
    terminator, or a JSON document), in order, with the guarantees of ``export``.
    """

    def export_lines(
        self,
        tenant: TenantId,
        query: SearchQuery,
        *,
        fmt: ExportFormat,
        order: Order,
        batch_size: int,
    ) -> AsyncIterator[list[str]]: ...
