"""``/api/v1/logs``: create, bulk-create and read audit events."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse

from auditline.api.deps import ActorDep, PrincipalDep, ServicesDep
from auditline.api.problems import AUTHENTICATED, JSON_BODY, READ, error_responses
from auditline.api.routing import ModelBodyRoute
from auditline.api.schemas import (
    BulkIn,
    BulkOut,
    DuplicateOut,
    EventIn,
    EventOut,
    TenantSlug,
)
from auditline.domain.events import FieldError, InvalidEvents
from auditline.ingest.service import Duplicate
from auditline.security.principal import Permission

router = APIRouter(
    prefix="/api/v1/logs",
    tags=["logs"],
    route_class=ModelBodyRoute,
)

_WRITE = error_responses(*AUTHENTICATED, *JSON_BODY)

TenantQuery = Annotated[
    TenantSlug | None,
    Query(description="The tenant, when the token grants several (or as the body says)"),
]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EventOut,
    responses={
        200: {
            "model": DuplicateOut,
            "description": "An event with this id is already stored (idempotent retry): its "
            "id and seq only, never its contents",
        },
        **_WRITE,
    },
    summary="Create one audit event",
)
async def create_log(
    body: EventIn,
    principal: PrincipalDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
) -> EventOut | JSONResponse:
    """Store one event; 201 once it is durably committed, 200 if its id was already stored."""
    if tenant_id is not None and body.tenant_id is not None and tenant_id != body.tenant_id:
        raise InvalidEvents([FieldError(("tenant_id",), "differs from the tenant_id parameter")])
    tenant = principal.authorize(body.tenant_id or tenant_id, Permission.WRITE_LOGS)
    stored = await services.ingest.create(tenant, body)
    if isinstance(stored, Duplicate):
        duplicate = DuplicateOut(id=stored.id, seq=stored.seq)
        return JSONResponse(duplicate.model_dump(mode="json"), status_code=status.HTTP_200_OK)
    return EventOut.of(stored)


@router.post(
    "/bulk",
    status_code=status.HTTP_201_CREATED,
    responses=_WRITE,
    summary="Create many audit events, all or nothing",
)
async def create_logs_bulk(
    body: BulkIn,
    principal: PrincipalDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
) -> BulkOut:
    """Store up to the configured number of events in one transaction.

    Every event must belong to the same tenant. If any event is invalid the response lists
    every error (with the event's index) and nothing is stored.
    """
    most = services.ingest.limits.bulk_max_events
    if len(body.events) > most:
        raise InvalidEvents([FieldError((), f"at most {most} events per request")])
    tenant = principal.authorize(_bulk_tenant(body, tenant_id), Permission.WRITE_LOGS)
    stored = await services.ingest.create_many(tenant, body.events)
    return BulkOut(
        inserted=len(stored.result.inserted),
        duplicates=len(stored.result.duplicates),
        ids=stored.ids,
    )


def _bulk_tenant(body: BulkIn, parameter: str | None) -> str | None:
    """The one tenant a bulk request names (in its events or the parameter), if any."""
    named = {e.tenant_id for e in body.events if e.tenant_id is not None}
    if parameter is not None:
        named.add(parameter)
    if len(named) > 1:
        raise InvalidEvents(
            [
                FieldError((i, "tenant_id"), "all events of a bulk request need the same tenant")
                for i, e in enumerate(body.events)
                if e.tenant_id is not None
            ]
        )
    return next(iter(named), None)


@router.get(
    "/{event_id:uuid}",
    responses=error_responses(*AUTHENTICATED, *READ, "http-404"),
    summary="Get one audit event",
)
async def get_log(
    event_id: UUID,
    principal: PrincipalDep,
    actor: ActorDep,
    services: ServicesDep,
    tenant_id: Annotated[TenantSlug | None, Query()] = None,
) -> EventOut:
    """The event, if it exists in the caller's tenant; another tenant's id is a plain 404.

    The read is recorded in the tenant's log (action VIEW) before the event is returned.
    """
    tenant = principal.authorize(tenant_id, Permission.READ_LOGS)
    only_user = principal.subject if principal.own_events_only else None
    async with services.admission.read():
        stored = await services.search.get(tenant, event_id, actor, only_user=only_user)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"event {event_id} not found")
    return EventOut.of(stored)
