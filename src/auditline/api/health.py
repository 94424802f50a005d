"""Liveness and readiness probes (no authentication, no tenant data).

Readiness is the database alone. With OpenSearch configured, ``/readyz`` also reports the
index lag (events and seconds, over every tenant) but does not fail on it: searches fall
back to PostgreSQL or answer 503 by themselves, and ingest never needs the index, so
taking the API out of the load balancer for a lagging index would stop ingest for nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from auditline.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


log = logging.getLogger(__name__)
_LAG_MAX_AGE_SECONDS = 5.0
"""Probes from several load balancer nodes share one lag reading for this long."""


class SearchIndexLag(BaseModel):
    """The OpenSearch index's lag behind PostgreSQL (null: it could not be read now)."""

    lag_events: int | None
    lag_seconds: float | None
    tenants_behind: int | None


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["up", "down"]
    search_index: SearchIndexLag | None = None
    """Only with OpenSearch configured; reported, never a reason to be unready."""


@router.get(
    "/readyz",
    summary="The database answers",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database does not answer"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    try:
        async with services.pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
    except Exception:  # any failure means "not ready"; the reason is logged by the pool
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    body: dict[str, object] = {"status": "ok", "database": "up"}
    if services.indexer is not None:
        lag = SearchIndexLag(lag_events=None, lag_seconds=None, tenants_behind=None)
        try:
            found = await asyncio.wait_for(
                services.indexer.lag(max_age_seconds=_LAG_MAX_AGE_SECONDS), timeout=2
            )
            lag = SearchIndexLag(
                lag_events=found.events, lag_seconds=round(found.seconds, 3),
                tenants_behind=found.tenants_behind,
            )  # fmt: skip
        except Exception:  # reported as unknown; readiness does not depend on it
            log.warning("could not read the search index lag", exc_info=True)
        body["search_index"] = lag.model_dump()
    return JSONResponse(body)
