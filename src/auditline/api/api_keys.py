"""``/api/v1/api-keys``: service credentials, managed by the admins of their tenant.

The secret is in the creation response and nowhere else, ever. Creating and revoking a key
is recorded in the tenant's log in the same transaction as the change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from auditline.api.deps import ActorDep, PrincipalDep, ServicesDep
from auditline.api.problems import AUTHENTICATED, JSON_BODY, error_responses
from auditline.api.routing import ModelBodyRoute
from auditline.api.schemas import Instant, Name, TenantSlug
from auditline.domain.tenants import PLATFORM_TENANT, TenantId
from auditline.security.principal import Forbidden, Permission, Principal, Scope
from auditline.storage.api_keys import ApiKey

router = APIRouter(
    prefix="/api/v1/api-keys",
    tags=["api keys"],
    route_class=ModelBodyRoute,
)


TenantQuery = Annotated[
    TenantSlug | None, Query(description="Required when the token grants several tenants")
]


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[Name, Field(examples=["billing-service"])]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=2, examples=[["logs:write"]])]
    tenant_id: TenantSlug | None = None
    expires_at: Instant | None = Field(default=None, description="RFC 3339; omit: never")


class ApiKeyOut(BaseModel):
    """A key as listed: everything but the secret."""

    id: UUID
    tenant_id: str
    name: str
    prefix: str = Field(description="The key's first characters; names it in audit records")
    scopes: list[str]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            tenant_id=key.tenant_id,
            name=key.name,
            prefix=key.prefix,
            scopes=key.scopes,
            created_by=key.created_by,
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            last_used_at=key.last_used_at,
        )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret: shown this once, stored only as a hash")


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def _check_expiry(expires_at: datetime | None, max_days: int | None) -> None:
    """A key expires in the future, and within the server's maximum lifetime if it has one."""
    if expires_at is None:
        if max_days is not None:
            raise _invalid("expires_at", "is required by this server")
        return
    now = datetime.now(UTC)
    if expires_at <= now:
        raise _invalid("expires_at", "must be in the future")
    if max_days is not None and expires_at > now + timedelta(days=max_days):
        raise _invalid("expires_at", f"must be within {max_days} days")


def _authorize(principal: Principal, requested: str | None) -> TenantId:
    tenant = principal.authorize(requested, Permission.MANAGE_TENANT)
    if tenant == PLATFORM_TENANT:
        raise Forbidden("the platform tenant takes no API keys", tenant=tenant)
    return tenant


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(*AUTHENTICATED, *JSON_BODY, "api-key-limit"),
    summary="Create an API key (tenant admin)",
)
async def create_api_key(
    body: ApiKeyIn,
    response: Response,
    principal: PrincipalDep,
    actor: ActorDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
) -> ApiKeyCreated:
    """A new key for one tenant, with ``logs:write`` and/or ``logs:read``. Copy ``key`` now."""
    if tenant_id is not None and body.tenant_id is not None and tenant_id != body.tenant_id:
        raise _invalid("tenant_id", "differs from the tenant_id parameter")
    tenant = _authorize(principal, body.tenant_id or tenant_id)
    _check_expiry(body.expires_at, services.settings.api_keys.max_lifetime_days)
    stored, secret = await services.security.api_keys.create(
        tenant, name=body.name, scopes=body.scopes, expires_at=body.expires_at, actor=actor
    )
    response.headers["Cache-Control"] = "no-store"
    return ApiKeyCreated(**ApiKeyOut.of(stored).model_dump(), key=secret)


@router.get(
    "",
    responses=error_responses(*AUTHENTICATED),
    summary="List a tenant's API keys (tenant admin)",
)
async def list_keys(
    principal: PrincipalDep, services: ServicesDep, tenant_id: TenantQuery = None
) -> list[ApiKeyOut]:
    """Every key of the tenant, revoked and expired ones included, oldest first."""
    tenant = _authorize(principal, tenant_id)
    return [ApiKeyOut.of(k) for k in await services.security.api_keys.list(tenant)]


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*AUTHENTICATED, "http-404"),
    summary="Revoke an API key (tenant admin)",
)
async def revoke_key(
    key_id: UUID,
    principal: PrincipalDep,
    actor: ActorDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
) -> None:
    """The key stops working at once, in every API process; revoking twice is harmless."""
    tenant = _authorize(principal, tenant_id)
    revoked = await services.security.api_keys.revoke(tenant, key_id, actor=actor)
    if revoked is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"API key {key_id} not found")
