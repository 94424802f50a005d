"""``/api/v1/tenants``: creating and listing tenants (platform admins), reading and changing
one tenant's settings (its admins).

Every change is recorded in the same transaction that makes it: a tenant's creation in the
platform log (nobody administers the tenant yet), a settings change in the tenant's own log
with the previous and new values.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Self

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from auditline.api.deps import PrincipalDep, ServicesDep
from auditline.api.errors import PROBLEM_JSON
from auditline.api.schemas import JsonObject, Problem, TenantIn, TenantOut, TenantSlug
from auditline.domain.events import TenantId
from auditline.security.principal import PLATFORM_TENANT, Permission, Principal
from auditline.storage.events import UnknownTenant
from auditline.storage.tenants import Tenant, create_tenant, get_tenant, list_tenants, update_tenant

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_JSON: {}}}
    for code in (401, 403, 404, 409, 422, 429, 503)
}
_MAX_SETTINGS_BYTES = 16 * 1024


class TenantPatch(BaseModel):
    """Fields to change; absent fields stay as they are. ``settings`` is replaced whole."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    retention_days: Annotated[int, Field(ge=1, le=36500)] | None = None
    archive_after_days: Annotated[int, Field(ge=1, le=36500)] | None = Field(
        default=None, description="null clears it"
    )
    settings: JsonObject | None = None

    @model_validator(mode="after")
    def _nullable_only_where_meaningful(self) -> Self:
        for name in ("name", "retention_days", "settings"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if self.settings is not None and len(json.dumps(self.settings)) > _MAX_SETTINGS_BYTES:
            raise ValueError(f"settings exceed {_MAX_SETTINGS_BYTES} bytes")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


def _view(tenant: Tenant, fields: Any = None) -> dict[str, Any]:
    """The tenant's changeable fields (all, or *fields*) as a change record shows them."""
    names = fields or ("name", "retention_days", "archive_after_days", "settings")
    return {name: getattr(tenant, name) for name in names}


def _actor(principal: Principal) -> dict[str, Any]:
    return {"actor": principal.subject, "actor_type": principal.actor_type}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
    summary="Create a tenant (platform admin)",
)
async def post_tenant(
    body: TenantIn, request: Request, principal: PrincipalDep, services: ServicesDep
) -> TenantOut:
    """Create a tenant and its empty log; recorded (CREATE, tenant) in the platform log."""
    principal.require(Permission.MANAGE_TENANTS)
    async with services.pool.connection() as conn, conn.transaction():
        tenant = await create_tenant(
            conn,
            TenantId(body.id),
            name=body.name,
            retention_days=body.retention_days,
            archive_after_days=body.archive_after_days,
            settings=body.settings,
        )
        await services.access.record_in(
            conn, TenantId(PLATFORM_TENANT), **_actor(principal), action="CREATE",
            resource_type="tenant", resource_id=tenant.id, message=f"created tenant {tenant.id}",
            after=_view(tenant), request_id=request.state.request_id,
        )  # fmt: skip
    return TenantOut.of(tenant)


@router.get("", responses=_ERRORS, summary="List the tenants the caller administers")
async def get_tenants(principal: PrincipalDep, services: ServicesDep) -> list[TenantOut]:
    """All client tenants for a platform admin; for a tenant admin, their own tenants."""
    principal.require(Permission.MANAGE_TENANT)
    only = None if principal.is_platform_admin else principal.tenants
    async with services.pool.connection() as conn:
        tenants = await list_tenants(conn, only)
    return [TenantOut.of(t) for t in tenants]


TenantPath = Annotated[TenantSlug, Path(description="Tenant id")]


@router.get("/{tenant_id}", responses=_ERRORS, summary="Get one tenant's settings")
async def get_one_tenant(
    tenant_id: TenantPath, principal: PrincipalDep, services: ServicesDep
) -> TenantOut:
    """For the tenant's admins and platform admins; any other tenant is a plain 404."""
    tenant = principal.authorize(tenant_id, Permission.MANAGE_TENANT)
    async with services.pool.connection() as conn:
        found = await get_tenant(conn, tenant)
    if found is None:
        raise UnknownTenant(tenant)
    return TenantOut.of(found)


@router.patch("/{tenant_id}", responses=_ERRORS, summary="Change one tenant's settings")
async def patch_tenant(
    tenant_id: TenantPath,
    body: TenantPatch,
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
) -> TenantOut:
    """Change name, retention, archive-after days or settings.

    Recorded (UPDATE, tenant) in the tenant's own log, in the same transaction, with the
    changed fields' previous values in ``before`` and new values in ``after``.
    """
    tenant = principal.authorize(tenant_id, Permission.MANAGE_TENANT)
    changes = body.changes()
    async with services.pool.connection() as conn, conn.transaction():
        result = await update_tenant(conn, tenant, changes)
        if result is None:
            raise UnknownTenant(tenant)
        before, after = result
        changed = [k for k in changes if getattr(before, k) != getattr(after, k)]
        if changed:
            await services.access.record_in(
                conn, tenant, **_actor(principal), action="UPDATE", resource_type="tenant",
                resource_id=tenant, message=f"changed tenant {', '.join(sorted(changed))}",
                before=_view(before, changed), after=_view(after, changed),
                request_id=request.state.request_id,
            )  # fmt: skip
    return TenantOut.of(after)
