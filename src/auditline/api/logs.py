"""``/api/v1/logs``: create, bulk-create and read audit events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from auditline.api.deps import PrincipalDep, ServicesDep
from auditline.api.errors import PROBLEM_JSON
from auditline.api.routing import ModelBodyRoute
from auditline.api.schemas import BulkIn, BulkOut, EventIn, EventOut, Problem, TenantSlug
from auditline.domain.events import FieldError, InvalidEvents, StoredEvent
from auditline.ingest.prepare import prepare_batch, prepare_events
from auditline.security.principal import Permission

router = APIRouter(prefix="/api/v1/logs", tags=["logs"], route_class=ModelBodyRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_JSON: {}}}
    for code in (401, 403, 404, 413, 422, 503)
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": EventOut, "description": "Already stored (idempotent retry)"},
        **_ERRORS,
    },
    summary="Create one audit event",
)
async def create_log(
    body: EventIn, principal: PrincipalDep, services: ServicesDep, response: Response
) -> EventOut:
    """Store one event; 201 once it is durably committed, 200 if its id was already stored."""
    tenant = principal.authorize(body.tenant_id, Permission.WRITE_LOGS)
    now = datetime.now(UTC)
    (event,) = prepare_events(
        tenant, [body], limits=services.settings.ingest, now=now, indexed_errors=False
    )
    result = await services.writer.write(tenant, [event])
    if event.id in result.inserted:
        return EventOut.of(StoredEvent(event=event, seq=result.inserted[event.id]))
    existing = await services.reader.get(tenant, event.id)
    if existing is None:  # stored under the same id, but not visible: cannot happen in-tenant
        raise RuntimeError("duplicate event id vanished")
    response.status_code = status.HTTP_200_OK
    return EventOut.of(existing)


@router.post(
    "/bulk",
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
    summary="Create many audit events, all or nothing",
)
async def create_logs_bulk(
    body: BulkIn,
    principal: PrincipalDep,
    services: ServicesDep,
    tenant_id: Annotated[TenantSlug | None, Query(description="Tenant for all events")] = None,
) -> BulkOut:
    """Store up to the configured number of events in one transaction.

    Every event must belong to the same tenant. If any event is invalid the response lists
    every error (with the event's index) and nothing is stored.
    """
    limits = services.settings.ingest
    if len(body.events) > limits.bulk_max_events:
        raise InvalidEvents(
            [FieldError((), f"at most {limits.bulk_max_events} events per request")]
        )
    named = {e.tenant_id for e in body.events if e.tenant_id is not None}
    if tenant_id is not None:
        named.add(tenant_id)
    if len(named) > 1:
        raise InvalidEvents(
            [
                FieldError((i, "tenant_id"), "all events of a bulk request need the same tenant")
                for i, e in enumerate(body.events)
                if e.tenant_id is not None
            ]
        )
    tenant = principal.authorize(next(iter(named), None), Permission.WRITE_LOGS)
    now = datetime.now(UTC)
    events = await prepare_batch(tenant, body.events, limits=limits, now=now)
    result = await services.writer.write(tenant, events)
    return BulkOut(
        inserted=len(result.inserted),
        duplicates=len(result.duplicates),
        ids=[event.id for event in events],
    )


@router.get("/{event_id}", responses=_ERRORS, summary="Get one audit event")
async def get_log(
    event_id: UUID,
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
    tenant_id: Annotated[TenantSlug | None, Query()] = None,
) -> EventOut:
    """The event, if it exists in the caller's tenant; another tenant's id is a plain 404.

    The read is recorded in the tenant's log (action VIEW) before the event is returned.
    """
    tenant = principal.authorize(tenant_id, Permission.READ_LOGS)
    only_user = principal.subject if principal.own_events_only else None
    stored = await services.reader.get(tenant, event_id, only_user=only_user)
    await services.access.record(
        tenant,
        actor=principal.subject,
        actor_type=principal.actor_type,
        action="VIEW",
        resource_type="audit_log",
        resource_id=str(event_id),
        message="read an audit event",
        metadata={"found": stored is not None},
        outcome="success" if stored is not None else "failure",
        request_id=request.state.request_id,
    )
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"event {event_id} not found")
    return EventOut.of(stored)
