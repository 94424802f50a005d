"""``GET /api/v1/logs`` (search), ``/logs/export`` and ``/logs/stats``.

Each handler resolves the tenant and checks the permission (404 before 403), parses
``q`` once into the AST (a parse error is a 400 pointing at the position), takes a read
admission slot (a 503 with ``Retry-After`` when none frees in time; statistics take a
heavy slot too, exports an export slot and a heavy one) and asks the search service,
which records the read in the tenant's own log before anything is returned. A ``user``
only ever sees events whose ``user_id`` is their own subject.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from auditline.api.deps import ActorDep, PrincipalDep, ServicesDep
from auditline.api.problems import AUTHENTICATED, READ, error_responses
from auditline.api.schemas import EventOut
from auditline.api.search_schemas import (
    ExportParams,
    FacetsOut,
    ListParams,
    SearchOut,
    SearchParams,
    StatsOut,
    StatsParams,
    TotalOut,
)
from auditline.search.export import MEDIA_TYPES, filename
from auditline.search.model import SearchQuery
from auditline.search.query import parse
from auditline.security.principal import Permission, Principal

router = APIRouter(prefix="/api/v1/logs", tags=["search"])


def _query(params: SearchParams, principal: Principal) -> SearchQuery:
    return SearchQuery(
        filters=params.filters(),
        q=parse(params.q) if params.q is not None else None,
        only_user=principal.subject if principal.own_events_only else None,
        include_access=params.include_access,
    )


@router.get(
    "",
    responses=error_responses(*AUTHENTICATED, *READ, "query-syntax", "invalid-cursor"),
    summary="Search audit events",
)
async def search_logs(
    principal: PrincipalDep,
    actor: ActorDep,
    services: ServicesDep,
    params: Annotated[ListParams, Query()],
) -> SearchOut:
    """Matching events, newest first by default, one keyset page at a time.

    Paging with `next_cursor` returns every event that matched when the first page was
    read exactly once, whatever is written meanwhile (events stored later, even with old
    timestamps, belong to a new search). The search is recorded in the tenant's log.
    With `include_total`, `facets` and `highlight` the same answer also counts the
    matches, counts their top values per field (over the same set as the page), and
    marks the page's matched words.
    """
    tenant = principal.authorize(params.tenant_id, Permission.READ_LOGS)
    query = _query(params, principal)
    async with services.admission.read():
        result = await services.search.search(
            tenant, query, actor, limit=params.limit, order=params.order,
            cursor=params.cursor, include_total=params.include_total,
            facets=params.facet_request(services.settings.search.facet_size),
            highlight=params.highlight,
        )  # fmt: skip
    return SearchOut(
        items=[EventOut.of(item) for item in result.items],
        next_cursor=result.next_cursor,
        total=None if result.total is None else TotalOut.of(result.total),
        facets=None if result.facets is None else FacetsOut.of(result.facets),
        highlights=SearchOut.highlights_of(result.items, result.highlights),
    )


@router.get(
    "/export",
    responses={
        200: {"content": {m: {} for m in MEDIA_TYPES.values()}},
        **error_responses(*AUTHENTICATED, *READ, "query-syntax", "not-sealed"),
    },
    response_class=StreamingResponse,
    summary="Export audit events (CSV, JSON, NDJSON)",
)
async def export_logs(
    principal: PrincipalDep,
    actor: ActorDep,
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
    if params.include_proofs:
        principal.require(Permission.VERIFY_LOGS, tenant)
    async with AsyncExitStack() as slot:
        await slot.enter_async_context(services.admission.export())
        proofs = await services.proofs.for_export(tenant) if params.include_proofs else None
        chunks = await services.search.export(
            tenant, query, actor, fmt=params.format, order=params.order, attachments=proofs
        )
        name = filename(tenant, params.format, datetime.now(UTC))
        return _AdmittedStream(
            chunks,
            slot.pop_all(),
            media_type=MEDIA_TYPES[params.format],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


class _AdmittedStream(StreamingResponse):
    """A streamed export that holds its admission slots until the last byte is sent, or
    the client goes away: the export's reads happen while it streams."""

    def __init__(self, content: AsyncIterator[bytes], slot: AsyncExitStack, **kwargs: Any):
        super().__init__(content, **kwargs)
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._slot.aclose()


@router.get(
    "/stats",
    responses=error_responses(*AUTHENTICATED, *READ, "query-syntax", "invalid-search"),
    summary="Statistics over a time range",
)
async def log_stats(
    principal: PrincipalDep,
    actor: ActorDep,
    services: ServicesDep,
    params: Annotated[StatsParams, Query()],
) -> StatsOut:
    """Totals, counts by action, severity, resource type and outcome, top users and
    resources, and a zero-filled timeline, for [start, end) (default: the last 24 hours).
    """
    tenant = principal.authorize(params.tenant_id, Permission.VIEW_STATS)
    query = _query(params, principal)
    async with services.admission.read(heavy=True):
        stats = await services.search.stats(
            tenant, query, actor, start=params.start, end=params.end, interval=params.interval,
        )  # fmt: skip
    return StatsOut.of(stats)
