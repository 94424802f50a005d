"""Liveness and readiness probes (no authentication, no tenant data)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from auditline.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["up", "down"]


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
    return JSONResponse({"status": "ok", "database": "up"})
