"""``/api/v1/tenants``: tenant management for platform admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from auditline.api.deps import PrincipalDep, ServicesDep
from auditline.api.errors import PROBLEM_JSON
from auditline.api.schemas import Problem, TenantIn, TenantOut
from auditline.domain.events import TenantId
from auditline.security.principal import Forbidden, Permission
from auditline.storage.tenants import create_tenant, list_tenants

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_JSON: {}}} for code in (401, 403, 409, 422, 503)
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
    summary="Create a tenant (platform admin)",
)
async def post_tenant(body: TenantIn, principal: PrincipalDep, services: ServicesDep) -> TenantOut:
    principal.require(Permission.MANAGE_TENANTS)
    async with services.pool.connection() as conn:
        tenant = await create_tenant(
            conn,
            TenantId(body.id),
            name=body.name,
            retention_days=body.retention_days,
            archive_after_days=body.archive_after_days,
            settings=body.settings,
        )
    return TenantOut.of(tenant)


@router.get("", responses=_ERRORS, summary="List the tenants the caller may see")
async def get_tenants(principal: PrincipalDep, services: ServicesDep) -> list[TenantOut]:
    """All tenants for a platform admin; for a tenant admin, the tenants in their token."""
    if principal.role != "admin":
        raise Forbidden(f"role '{principal.role}' may not list tenants")
    only = None if principal.is_platform_admin else principal.tenants
    async with services.pool.connection() as conn:
        tenants = await list_tenants(conn, only)
    return [TenantOut.of(t) for t in tenants]
