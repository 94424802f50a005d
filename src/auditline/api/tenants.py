"""``/api/v1/tenants``: creating and listing tenants (platform admins), reading and changing
one tenant's settings (its admins).

Every change is recorded in the same transaction that makes it: a tenant's creation in the
platform log (nobody administers the tenant yet), a settings change in the tenant's own log
with the previous and new values.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from auditline.api.deps import ActorDep, PrincipalDep, ServicesDep
from auditline.api.problems import AUTHENTICATED, JSON_BODY, error_responses
from auditline.api.routing import ModelBodyRoute
from auditline.api.schemas import (
    Days,
    Name,
    SettingsObject,
    TenantIn,
    TenantOut,
    TenantSlug,
    not_nullable,
)
from auditline.security.principal import Permission

router = APIRouter(
    prefix="/api/v1/tenants",
    tags=["tenants"],
    route_class=ModelBodyRoute,
)

_ERRORS = error_responses(*AUTHENTICATED)


class TenantPatch(BaseModel):
    """Fields to change; absent fields stay as they are. ``settings`` is replaced whole, and
    checked by the JSON rules of event metadata (``TenantService``).

    Only ``archive_after_days`` may be null (it clears it); for the others None means
    absent, so null is refused and the document does not offer it (``not_nullable``).
    """

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(default=None, json_schema_extra=not_nullable)
    retention_days: Days | None = Field(default=None, json_schema_extra=not_nullable)
    archive_after_days: Days | None = Field(default=None, description="null clears it")
    legal_hold: StrictBool | None = Field(
        default=None,
        description="true: nothing of the log may be removed until cleared",
        json_schema_extra=not_nullable,
    )
    settings: SettingsObject | None = Field(default=None, json_schema_extra=not_nullable)

    @model_validator(mode="after")
    def _nullable_only_where_meaningful(self) -> Self:
        for name in ("name", "retention_days", "legal_hold", "settings"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(*AUTHENTICATED, *JSON_BODY, "tenant-exists"),
    summary="Create a tenant (platform admin)",
)
async def post_tenant(
    body: TenantIn, principal: PrincipalDep, actor: ActorDep, services: ServicesDep
) -> TenantOut:
    """Create a tenant and its empty log; recorded (CREATE, tenant) in the platform log."""
    tenant = await services.tenants.create(
        principal.new_tenant(body.id), actor, name=body.name, retention_days=body.retention_days,
        archive_after_days=body.archive_after_days, settings=body.settings,
        legal_hold=body.legal_hold,
    )  # fmt: skip
    return TenantOut.of(tenant)


@router.get("", responses=_ERRORS, summary="List the tenants the caller administers")
async def get_tenants(principal: PrincipalDep, services: ServicesDep) -> list[TenantOut]:
    """All client tenants for a platform admin; for a tenant admin, their own tenants."""
    tenants = await services.tenants.list(principal.administered_tenants())
    return [TenantOut.of(t) for t in tenants]


TenantPath = Annotated[TenantSlug, Path(description="Tenant id")]


@router.get("/{tenant_id}", responses=_ERRORS, summary="Get one tenant's settings")
async def get_one_tenant(
    tenant_id: TenantPath, principal: PrincipalDep, services: ServicesDep
) -> TenantOut:
    """For the tenant's admins and platform admins; any other tenant is a plain 404."""
    tenant = principal.authorize(tenant_id, Permission.MANAGE_TENANT)
    return TenantOut.of(await services.tenants.get(tenant))


@router.patch(
    "/{tenant_id}",
    responses=error_responses(*AUTHENTICATED, *JSON_BODY),
    summary="Change one tenant's settings",
)
async def patch_tenant(
    tenant_id: TenantPath,
    body: TenantPatch,
    principal: PrincipalDep,
    actor: ActorDep,
    services: ServicesDep,
) -> TenantOut:
    """Change name, retention, archive-after days, legal hold or settings.

    Recorded (UPDATE, tenant) in the tenant's own log, in the same transaction, with the
    changed fields' previous values in ``before`` and new values in ``after``.
    """
    tenant = principal.authorize(tenant_id, Permission.MANAGE_TENANT)
    return TenantOut.of(await services.tenants.update(tenant, actor, body.changes()))
