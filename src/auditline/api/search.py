"""``GET /api/v1/logs`` (search), ``/logs/export`` and ``/logs/stats``.

Each handler resolves the tenant and checks the permission (404 before 403), parses
``q`` once into the AST (a parse error is a 400 pointing at the position), asks the
search service, and records the read in the tenant's own log before anything is
returned. A ``user`` only ever sees events whose ``user_id`` is their own subject.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from auditline.api.deps import PrincipalDep, Services, ServicesDep
from auditline.api.errors import PROBLEM_JSON
from auditline.api.schemas import EventOut, Problem
from auditline.api.search_schemas import (
    ExportParams,
    ListParams,
    SearchOut,
    SearchParams,
    StatsOut,
    StatsParams,
    TotalOut,
)
from auditline.domain.events import TenantId
from auditline.search.export import MEDIA_TYPES, filename
from auditline.search.model import INTERVAL_SECONDS, InvalidSearch, SearchQuery
from auditline.search.query import parse
from auditline.security.principal import Permission, Principal

router = APIRouter(prefix="/api/v1/logs", tags=["search"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_JSON: {}}}
    for code in (400, 401, 403, 404, 422, 503)
}


def _query(params: SearchParams, principal: Principal) -> SearchQuery:
    return SearchQuery(
        filters=params.filters(),
        q=parse(params.q) if params.q is not None else None,
        only_user=principal.subject if principal.own_events_only else None,
    )


async def _record(
    request: Request,
    services: Services,
    principal: Principal,
    tenant: TenantId,
    *,
    action: str,
    message: str,
    metadata: dict[str, Any],
) -> None:
    await services.access.record(
        tenant,
        actor=principal.subject,
        actor_type=principal.actor_type,
        action=action,
        resource_type="audit_log",
        message=message,
        metadata=metadata,
        request_id=request.state.request_id,
    )


@router.get("", responses=_ERRORS, summary="Search audit events")
async def search_logs(
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
    params: Annotated[ListParams, Query()],
) -> SearchOut:
    """Matching events, newest first by default, one keyset page at a time.

    Paging with `next_cursor` returns every event that matched when the first page was
    read exactly once, whatever is written meanwhile (events stored later, even with old
    timestamps, belong to a new search). The search is recorded in the tenant's log.
    """
    tenant = principal.authorize(params.tenant_id, Permission.READ_LOGS)
    query = _query(params, principal)
    result = await services.search.search(
        tenant, query, limit=params.limit, order=params.order, cursor=params.cursor,
        include_total=params.include_total,
    )  # fmt: skip
    await _record(
        request, services, principal, tenant, action="VIEW", message="searched audit events",
        metadata={"query": query.describe(), "result_count": len(result.items),
                  "page": "next" if params.cursor else "first"},
    )  # fmt: skip
    return SearchOut(
        items=[EventOut.of(item) for item in result.items],
        next_cursor=result.next_cursor,
        total=None if result.total is None else TotalOut.of(result.total),
    )


@router.get(
    "/export",
    responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}, **_ERRORS},
    response_class=StreamingResponse,
    summary="Export audit events (CSV, JSON, NDJSON)",
)
async def export_logs(
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
    params: Annotated[ExportParams, Query()],
) -> StreamingResponse:
    """Every matching event as a streamed file (constant memory, keyset batches).

    The export is recorded before the first byte is sent (the count is not known yet, so
    `result_count` is null and `phase` is `started`); a second record with the exact
    count (`phase: completed`) follows when the whole file has been sent.
    """
    tenant = principal.authorize(params.tenant_id, Permission.EXPORT_LOGS)
    query = _query(params, principal)
    described = {"query": query.describe(), "format": params.format}
    sent = 0

    def counted(n: int) -> None:
        nonlocal sent
        sent += n

    chunks = services.search.export_file(
        tenant, query, fmt=params.format, order=params.order, on_batch=counted
    )
    # The first chunk needs the first batch, so a failing database is still a 503 problem
    # rather than a truncated file.
    first = await anext(chunks)
    await _record(
        request, services, principal, tenant, action="EXPORT",
        message="started an export of audit events",
        metadata={**described, "result_count": None, "phase": "started"},
    )  # fmt: skip

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk
        await _record(
            request, services, principal, tenant, action="EXPORT",
            message="completed an export of audit events",
            metadata={**described, "result_count": sent, "phase": "completed"},
        )  # fmt: skip

    name = filename(tenant, params.format, datetime.now(UTC))
    return StreamingResponse(
        body(),
        media_type=MEDIA_TYPES[params.format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _day_before(end: datetime) -> datetime:
    """The default start of statistics: 24 hours before *end*, or the earliest instant
    there is (an *end* in the first day of year 1 must not overflow into a 500)."""
    earliest = datetime.min.replace(tzinfo=UTC)
    return earliest if end - earliest < timedelta(hours=24) else end - timedelta(hours=24)


@router.get("/stats", responses=_ERRORS, summary="Statistics over a time range")
async def log_stats(
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
    params: Annotated[StatsParams, Query()],
) -> StatsOut:
    """Totals, counts by action, severity, resource type and outcome, top users and
    resources, and a zero-filled timeline, for [start, end) (default: the last 24 hours).
    """
    tenant = principal.authorize(params.tenant_id, Permission.VIEW_STATS)
    query = _query(params, principal)
    end = params.end or datetime.now(UTC)
    start = params.start or _day_before(end)
    if start >= end:
        raise InvalidSearch("start", "start must be before end")
    buckets = (end - start).total_seconds() / INTERVAL_SECONDS[params.interval]
    limit = services.settings.search.stats_max_buckets
    if buckets > limit:
        raise InvalidSearch(
            "interval", f"the range holds more than {limit} {params.interval} buckets; "
            "choose a larger interval or a shorter range",
        )  # fmt: skip
    stats = await services.search.stats(
        tenant, query, start=start, end=end, interval=params.interval
    )
    await _record(
        request, services, principal, tenant, action="VIEW", message="viewed audit statistics",
        metadata={"query": query.describe(), "result_count": stats.total,
                  "interval": params.interval, "start": start.isoformat(),
                  "end": end.isoformat()},
    )  # fmt: skip
    return StatsOut.of(stats)
