"""Liveness and readiness probes (no authentication, no tenant data)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from auditline.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers", response_model=None)
async def readyz(services: ServicesDep) -> JSONResponse:
    try:
        async with services.pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
    except Exception:  # any failure means "not ready"; the reason is logged by the pool
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "up"})
