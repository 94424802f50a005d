"""Ingest as the API calls it: drafts in, durably committed events out.

Preparation (limits, diff, masking, leaf hash: ``ingest.prepare``) and the group-commit
writer (``ingest.writer``) behind two methods, one per endpoint. A method returns only once
the events are durably committed, so the caller may acknowledge them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from auditline.config import IngestSettings
from auditline.domain.events import DraftFields, InvalidEvents, StoredEvent, WriteResult
from auditline.domain.tenants import TenantId
from auditline.domain.validation import repeated_ids
from auditline.ingest.prepare import prepare_batch, prepare_events
from auditline.ingest.writer import EventWriter
from auditline.search.backend import EventLookup


@dataclass(frozen=True, slots=True)
class Stored:
    """One event as the log holds it; *created* is False when its id was already stored."""

    event: StoredEvent
    created: bool


@dataclass(frozen=True, slots=True)
class BatchStored:
    """What a batch stored, and every event's id in request order (made ones included)."""

    result: WriteResult
    ids: list[UUID]


class Ingest:
    def __init__(self, writer: EventWriter, events: EventLookup, limits: IngestSettings) -> None:
        self._writer = writer
        self._events = events
        self.limits = limits

    async def create(self, tenant: TenantId, draft: DraftFields) -> Stored:
        """Store one event, idempotently by id: a retry gets the first stored version back."""
        (event,) = prepare_events(
            tenant, [draft], limits=self.limits, now=datetime.now(UTC), indexed_errors=False
        )
        result = await self._writer.write(tenant, [event])
        if event.id in result.inserted:
            return Stored(StoredEvent(event=event, seq=result.inserted[event.id]), created=True)
        existing = await self._events.get(tenant, event.id)
        if existing is None:  # stored under the same id, but not visible: cannot happen in-tenant
            raise RuntimeError("duplicate event id vanished")
        return Stored(existing, created=False)

    async def create_many(self, tenant: TenantId, drafts: Sequence[DraftFields]) -> BatchStored:
        """Store every draft in one transaction, or nothing if any is invalid (all errors,
        each with the event's index). An id sent twice is an error at its second index."""
        if repeats := repeated_ids(drafts):
            raise InvalidEvents(repeats)
        events = await prepare_batch(tenant, drafts, limits=self.limits, now=datetime.now(UTC))
        result = await self._writer.write(tenant, events)
        return BatchStored(result, [event.id for event in events])
