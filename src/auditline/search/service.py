"""Reading the audit log, as the API and the CLI do it: every read answered and recorded.

One method per kind of read (get, search, export, stats). Each is one unit of work: it asks
the backend, then records the read in the tenant's own log (``AccessLog``) before the
answer is returned; an export records its start before the first byte and its end with
the exact count. Authorization happens before (``Principal.authorize``), so a method is
only ever called for a tenant the caller may read, and a ``user``'s restriction to their
own events arrives inside the query (``SearchQuery.only_user``).

What else is here is the same for every backend: turning opaque cursors into positions
and back, clamping sizes, and checking a statistics range.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from auditline.admission import paced
from auditline.config import SearchSettings
from auditline.domain.access import ACCESS_RESOURCE, AccessLog, Actor
from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
from auditline.search.backend import (
    EncodingBackend,
    EventLookup,
    Highlighter,
    SearchBackend,
    StatsBackend,
)
from auditline.search.cursor import CursorCodec, binding
from auditline.search.export import Attachments, ExportFormat, encode, frame
from auditline.search.model import (
    INTERVAL_SECONDS,
    FacetRequest,
    Facets,
    Highlight,
    Interval,
    InvalidSearch,
    Order,
    PageRequest,
    SearchQuery,
    Stats,
    Total,
)
from auditline.search.routing import RoutedSearch


@dataclass(frozen=True, slots=True)
class SearchResult:
    items: list[StoredEvent]
    next_cursor: str | None
    total: Total | None
    facets: Facets | None = None
    highlights: list[Highlight | None] | None = None
    """One per item, in order, with ``highlight``."""


class SearchService:
    def __init__(
        self,
        backend: SearchBackend,
        events: EventLookup,
        cursors: CursorCodec,
        settings: SearchSettings,
        access: AccessLog,
        *,
        stats: StatsBackend,
        highlighter: Highlighter | None = None,
    ) -> None:
        """*highlighter* marks matched words (PostgreSQL); without one, ``highlight``
        answers no highlights."""
        self.backend = backend
        self.stats_backend = stats
        self.highlighter = highlighter
        self.events = events
        self.cursors = cursors
        self.settings = settings
        self._access = access

    async def get(
        self, tenant: TenantId, event_id: UUID, actor: Actor, *, only_user: str | None = None
    ) -> StoredEvent | None:
        """The event, or None when it does not exist *or* the caller may not see it.

        Recorded (VIEW) either way, with whether it was found.
        """
        stored = await self.events.get(tenant, event_id, only_user=only_user)
        await self._access.record(
            tenant, actor, action="VIEW", resource_type=ACCESS_RESOURCE, resource_id=str(event_id),
            message="read an audit event", metadata={"found": stored is not None},
            outcome="success" if stored is not None else "failure",
        )  # fmt: skip
        return stored

    async def search(
        self,
        tenant: TenantId,
        query: SearchQuery,
        actor: Actor,
        *,
        limit: int | None,
        order: Order,
        cursor: str | None,
        include_total: bool,
        facets: FacetRequest | None = None,
        highlight: bool = False,
    ) -> SearchResult:
        """One page; raises ``InvalidCursor`` for a cursor not issued for this very query.

        *facets* are counted over the same set as the page and its total (the events below
        the page's watermark), by whichever backend answers them (``search.routing``);
        *highlight* marks the matched words of this page's events only. Both are part of
        the one recorded read."""
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
        counted = None
        if facets is not None:
            counted = await self.backend.facets(tenant, query, facets, watermark=page.watermark)
        marked: list[Highlight | None] | None = None
        if highlight:
            marked = [None] * len(page.items)
            if self.highlighter is not None:
                marked = await self.highlighter.highlight(tenant, query, page.items)
        metadata: dict[str, Any] = {
            "query": query.describe(), "result_count": len(page.items),
            "page": "next" if cursor else "first",
        }  # fmt: skip
        if facets is not None:
            metadata["facets"] = list(facets.fields)
        if highlight:
            metadata["highlight"] = True
        await self._access.record(
            tenant, actor, action="VIEW", resource_type=ACCESS_RESOURCE,
            message="searched audit events", metadata=metadata,
        )  # fmt: skip
        return SearchResult(
            items=page.items, next_cursor=next_cursor, total=page.total, facets=counted,
            highlights=marked,
        )  # fmt: skip

    async def export(
        self,
        tenant: TenantId,
        query: SearchQuery,
        actor: Actor,
        *,
        fmt: ExportFormat,
        order: Order = "asc",
        on_batch: Callable[[int], None] | None = None,
        context: Mapping[str, Any] | None = None,
        attachments: Attachments | None = None,
    ) -> AsyncIterator[bytes]:
        """The export file, chunk by chunk, recorded at its start and at its end.

        The first batch is read before this returns, so a failing backend raises here,
        before anything is sent. Then the start is recorded (``phase: started``, the count
        not known yet); the end, with the exact count (``phase: completed``), once the last
        chunk has been taken. *context* adds to both records' metadata (the CLI says
        ``via: cli``). *attachments* (JSON and NDJSON only) add a head document and fields
        to every event: the inclusion proofs of ``include_proofs``.
        """
        described = {"query": query.describe(), "format": fmt, **(context or {})}
        if attachments is not None:
            described["with"] = sorted(attachments.head)
        sent = 0

        def counted(n: int) -> None:
            nonlocal sent
            sent += n
            if on_batch is not None:
                on_batch(n)

        chunks = self._file(
            tenant, query, fmt=fmt, order=order, on_batch=counted, attachments=attachments
        )
        first = await anext(chunks)  # frame() always yields at least the header
        await self._access.record(
            tenant, actor, action="EXPORT", resource_type=ACCESS_RESOURCE,
            message="started an export of audit events",
            metadata={**described, "result_count": None, "phase": "started"},
        )  # fmt: skip

        async def rest() -> AsyncIterator[bytes]:
            yield first
            async for chunk in chunks:
                yield chunk
            await self._access.record(
                tenant, actor, action="EXPORT", resource_type=ACCESS_RESOURCE,
                message="completed an export of audit events",
                metadata={**described, "result_count": sent, "phase": "completed"},
            )  # fmt: skip

        return rest()

    def _file(
        self,
        tenant: TenantId,
        query: SearchQuery,
        *,
        fmt: ExportFormat,
        order: Order,
        on_batch: Callable[[int], None],
        attachments: Attachments | None,
    ) -> AsyncIterator[bytes]:
        size = self.settings.export_batch_size
        # A routed search encodes with PostgreSQL when PostgreSQL is the one asked.
        encoder = self.backend
        if isinstance(encoder, RoutedSearch):
            encoder = encoder.choose(query)
        duty = self.settings.export_duty
        if isinstance(encoder, EncodingBackend) and attachments is None:
            lines = encoder.export_lines(tenant, query, fmt=fmt, order=order, batch_size=size)
            return frame(paced(lines, duty), fmt, on_batch=on_batch)
        batches = self.backend.export(tenant, query, order=order, batch_size=size)
        return encode(paced(batches, duty), fmt, on_batch=on_batch, attachments=attachments)

    async def count(self, tenant: TenantId, query: SearchQuery) -> int:
        """The exact number of matches (for progress bars; not recorded, reads no event)."""
        return await self.backend.count(tenant, query)

    async def stats(
        self,
        tenant: TenantId,
        query: SearchQuery,
        actor: Actor,
        *,
        start: datetime | None,
        end: datetime | None,
        interval: Interval,
    ) -> Stats:
        """Counts over [start, end) (default: the 24 hours before *end*, which defaults to
        now); raises ``InvalidSearch`` for an empty range or one with too many buckets.

        Statistics count in UTC hours and days, so a bound beyond :data:`_CALENDAR` (the API
        refuses times outside the calendar in UTC; its last day is still let through, and
        other callers may pass anything) is moved to its edge, which no stored event lies
        beyond; the answer says which range it counted.
        """
        end = _within_calendar(end or datetime.now(UTC))
        start = _within_calendar(start) if start is not None else _day_before(end)
        if start >= end:
            raise InvalidSearch(
                "start", f"start must be before end (statistics count up to {_LAST_DAY})"
            )
        buckets = (end - start).total_seconds() / INTERVAL_SECONDS[interval]
        limit = self.settings.stats_max_buckets
        if buckets > limit:
            raise InvalidSearch(
                "interval", f"the range holds more than {limit} {interval} buckets; "
                "choose a larger interval or a shorter range",
            )  # fmt: skip
        stats = await self.stats_backend.stats(
            tenant, query, start=start, end=end, interval=interval, top=self.settings.stats_top
        )
        await self._access.record(
            tenant, actor, action="VIEW", resource_type=ACCESS_RESOURCE,
            message="viewed audit statistics",
            metadata={"query": query.describe(), "result_count": stats.total,
                      "interval": interval, "start": start.isoformat(), "end": end.isoformat()},
        )  # fmt: skip
        return stats


_CALENDAR: Final = (datetime.min.replace(tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC))
"""The instants statistics count within: the calendar in UTC, less its last day, so that
the hour and day arithmetic at a range's end never leaves it (an OverflowError was a 500).
Stored events lie far inside: ingest refuses times beyond a few minutes from now."""


_LAST_DAY: Final = f"{_CALENDAR[1]:%Y-%m-%dT%H:%M:%SZ}"


def _within_calendar(ts: datetime) -> datetime:
    first, last = _CALENDAR
    try:
        utc = ts.astimezone(UTC)
    except OverflowError:  # beyond year 1 or 9999 once in UTC
        return first if ts.year == 1 else last
    return min(max(utc, first), last)


def _day_before(end: datetime) -> datetime:
    """The default start of statistics: 24 hours before *end*, or the calendar's first
    instant (24 hours before the first day of year 1 do not exist)."""
    first = _CALENDAR[0]
    return first if end - first < timedelta(hours=24) else end - timedelta(hours=24)
