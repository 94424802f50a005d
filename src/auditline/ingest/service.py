"""Ingest as the API calls it: drafts in, durably committed events out.

Preparation (limits, diff, masking, leaf hash: ``ingest.prepare``) and the group-commit
writer (``ingest.writer``) behind two methods, one per endpoint. A method returns only once
the events are durably committed, so the caller may acknowledge them. Each tenant's
masking rules come from the per-process cache ``ingest.tenant_rules``: no database round
trip per request.

What a write answers reveals nothing the writer could not read otherwise: a new event is
the caller's own, but a retry of an id already stored answers only that id and its place
in the log (:class:`Duplicate`), never the stored event, which another caller may have
written and which the retrying caller may have no right to read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from auditline.config import IngestSettings
from auditline.domain.access import ACCESS_RESOURCE
from auditline.domain.events import (
    DraftFields,
    Event,
    FieldError,
    InvalidEvents,
    StoredEvent,
    WriteResult,
)
from auditline.domain.tenants import TenantId
from auditline.domain.validation import repeated_ids
from auditline.ingest.prepare import prepare_batch
from auditline.ingest.tenant_rules import TenantRules
from auditline.ingest.writer import EventWriter
from auditline.metrics import Metrics
from auditline.search.backend import EventLookup


@dataclass(frozen=True, slots=True)
class Duplicate:
    """An event with this id was already stored: where it is, nothing of what it says."""

    id: UUID
    seq: int


@dataclass(frozen=True, slots=True)
class BatchStored:
    """What a batch stored, and every event's id in request order (made ones included)."""

    result: WriteResult
    ids: list[UUID]


class Ingest:
    def __init__(
        self,
        writer: EventWriter,
        events: EventLookup,
        limits: IngestSettings,
        rules: TenantRules,
        metrics: Metrics | None = None,
    ) -> None:
        self._writer = writer
        self._metrics = metrics
        self._events = events
        self.limits = limits
        self._rules = rules

    async def create(self, tenant: TenantId, draft: DraftFields) -> StoredEvent | Duplicate:
        """Store one event, idempotently by id; a retry of a stored id gets a ``Duplicate``."""
        (event,) = await self._prepare(tenant, [draft], indexed=False)
        result = await self._writer.write(tenant, [event])
        self._count(tenant, result)
        if event.id in result.inserted:
            return StoredEvent(event=event, seq=result.inserted[event.id])
        existing = await self._events.get(tenant, event.id)
        if existing is None:  # stored under the same id, but not visible: cannot happen in-tenant
            raise RuntimeError("duplicate event id vanished")
        return Duplicate(event.id, existing.seq)

    async def create_many(self, tenant: TenantId, drafts: Sequence[DraftFields]) -> BatchStored:
        """Store every draft in one transaction, or nothing if any is invalid (all errors,
        each with the event's index). An id sent twice is an error at its second index."""
        if repeats := repeated_ids(drafts):
            self._rejected(tenant, len(drafts))
            raise InvalidEvents(repeats)
        events = await self._prepare(tenant, drafts, indexed=True)
        result = await self._writer.write(tenant, events)
        self._count(tenant, result)
        return BatchStored(result, [event.id for event in events])

    async def _prepare(
        self, tenant: TenantId, drafts: Sequence[DraftFields], *, indexed: bool
    ) -> list[Event]:
        """The drafts prepared under the tenant's masking rules, or every error of every
        draft at once (a claim to the reserved resource type of access records included).

        The reserved type is checked here, not in the ingest rules, because the service's
        own access records go through those rules and carry it.
        """
        rules = self._rules.cached(tenant) or await self._rules.get(tenant)  # no await if fresh
        reserved = _reserved(drafts, indexed=indexed)
        try:
            events = await prepare_batch(
                tenant, drafts, limits=self.limits, now=datetime.now(UTC), rules=rules,
                indexed_errors=indexed,
            )  # fmt: skip
        except InvalidEvents as exc:
            self._rejected(tenant, len(drafts))
            raise InvalidEvents(reserved + exc.errors) from None
        if reserved:
            self._rejected(tenant, len(drafts))
            raise InvalidEvents(reserved)
        return events

    def _count(self, tenant: TenantId, result: WriteResult) -> None:
        if self._metrics is not None:
            label = self._metrics.tenant_label(tenant)
            if result.inserted:
                self._metrics.events_ingested.labels(label).inc(len(result.inserted))
            if result.duplicates:
                self._metrics.events_duplicate.labels(label).inc(len(result.duplicates))

    def _rejected(self, tenant: TenantId, count: int) -> None:
        """A refused request stores none of its events: all of them count as rejected."""
        if self._metrics is not None:
            self._metrics.events_rejected.labels(self._metrics.tenant_label(tenant)).inc(count)


def _reserved(drafts: Sequence[DraftFields], *, indexed: bool) -> list[FieldError]:
    """Errors for drafts that claim the resource type of the service's own access records."""
    return [
        FieldError(
            (i, "resource_type") if indexed else ("resource_type",),
            f"'{ACCESS_RESOURCE}' is reserved for the service's records of reads",
        )
        for i, draft in enumerate(drafts)
        if draft.resource_type == ACCESS_RESOURCE
    ]
