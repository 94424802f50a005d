"""Who is calling, what they may do, and which tenant a request acts on.

The order of checks is deliberate: the tenant is resolved first, and a tenant the caller has
no grant for is reported exactly like a tenant that does not exist (404), so probing cannot
reveal which tenants exist. Only then is the action checked against the role or the API
key's scopes (403).

Two kinds of principal exist: people and programs holding a JWT (a role over one or more
tenants, or all of them for a platform admin), and services holding an API key (scopes over
exactly one tenant). The reserved ``platform`` tenant holds the service's own records and is
visible to platform admins only; nobody may write to it through the API.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast, get_args
from uuid import UUID

from auditline.config import ClaimMapping
from auditline.domain.events import ActorType
from auditline.domain.tenants import PLATFORM_TENANT, TenantId
from auditline.domain.validation import has_control_character, has_surrogate

Role = Literal["admin", "auditor", "user"]
ROLES: Final = frozenset(get_args(Role))
Scope = Literal["logs:write", "logs:read"]
SCOPES: Final = frozenset(get_args(Scope))
ALL_TENANTS: Final = "*"


class Permission(enum.Enum):
    WRITE_LOGS = "logs:write"
    READ_LOGS = "logs:read"
    EXPORT_LOGS = "logs:export"
    VIEW_STATS = "logs:stats"
    CLEANUP_LOGS = "logs:cleanup"
    VERIFY_LOGS = "logs:verify"  # checkpoints and proofs: they reveal the tenant's event count
    MANAGE_TENANT = "tenant:manage"  # API keys and settings of one's own tenants
    MANAGE_TENANTS = "tenants:manage"  # create and list all tenants: platform admins only


_ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    "admin": frozenset(
        {
            Permission.WRITE_LOGS,
            Permission.READ_LOGS,
            Permission.EXPORT_LOGS,
            Permission.VIEW_STATS,
            Permission.CLEANUP_LOGS,
            Permission.MANAGE_TENANT,
            Permission.VERIFY_LOGS,
        }
    ),
    "auditor": frozenset(
        {
            Permission.READ_LOGS,
            Permission.EXPORT_LOGS,
            Permission.VIEW_STATS,
            Permission.VERIFY_LOGS,
        }
    ),
    # A plain user may read, but only events they performed (see Principal.own_events_only).
    "user": frozenset({Permission.WRITE_LOGS, Permission.READ_LOGS}),
}

# An API key never manages anything and never cleans up; logs:read covers every read form.
_SCOPE_PERMISSIONS: Final[dict[Scope, frozenset[Permission]]] = {
    "logs:write": frozenset({Permission.WRITE_LOGS}),
    "logs:read": frozenset(
        {
            Permission.READ_LOGS,
            Permission.EXPORT_LOGS,
            Permission.VIEW_STATS,
            Permission.VERIFY_LOGS,
        }
    ),
}

# What may be done on the platform tenant (by platform admins): read it, set its retention.
# Writing to it is reserved to the service itself, so its records cannot be forged.
_PLATFORM_LOG_PERMISSIONS: Final = frozenset(
    {
        Permission.READ_LOGS,
        Permission.EXPORT_LOGS,
        Permission.VIEW_STATS,
        Permission.CLEANUP_LOGS,
        Permission.MANAGE_TENANT,
        Permission.VERIFY_LOGS,
    }
)

_DESCRIBE: Final[dict[Permission, str]] = {
    Permission.WRITE_LOGS: "write audit events",
    Permission.READ_LOGS: "read audit events",
    Permission.EXPORT_LOGS: "export audit events",
    Permission.VIEW_STATS: "view audit statistics",
    Permission.CLEANUP_LOGS: "clean up audit events",
    Permission.VERIFY_LOGS: "read checkpoints and proofs of the audit log",
    Permission.MANAGE_TENANT: "manage this tenant",
    Permission.MANAGE_TENANTS: "manage tenants",
}


class AuthError(Exception):
    """Base of the authorization failures; messages never name other tenants' data."""


class InvalidClaims(AuthError):
    """The token verified but its claims do not describe a valid principal (401)."""


class TenantNotFound(AuthError):
    """No such tenant for this caller: absent, or not granted (404). The argument is the id."""


class TenantRequired(AuthError):
    """The caller has several tenants and the request did not name one (422)."""


class Forbidden(AuthError):
    """The caller may not do this (403); *tenant* is the resolved tenant, when there is one."""

    def __init__(
        self, message: str, *, tenant: TenantId | None = None, permission: Permission | None = None
    ) -> None:
        super().__init__(message)
        self.tenant = tenant
        self.permission = permission


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim *name*: looked up as is first, then as a dotted path into nested objects."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _map_role(value: Any, role_values: Mapping[str, str]) -> Role:
    values = _strings(value)
    if values is None:
        raise InvalidClaims("token has no valid role")
    if role_values:
        mapped = {role_values[v] for v in values if v in role_values}
    else:
        mapped = {v for v in values if v in ROLES}
    if not mapped:
        raise InvalidClaims("token has no valid role")
    if len(mapped) > 1:  # fail closed rather than guess which role was meant
        raise InvalidClaims("token maps to more than one role")
    return cast(Role, mapped.pop())


def _map_tenants(value: Any, prefix: str) -> frozenset[str]:
    values = _strings(value)
    if values is None:
        raise InvalidClaims("token grants no tenants")
    if prefix:
        values = [v.removeprefix(prefix) for v in values if v.startswith(prefix)]
    tenants = frozenset(v for v in values if v)
    if not tenants:
        raise InvalidClaims("token grants no tenants")
    return tenants


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role | None
    tenants: frozenset[str]
    scopes: frozenset[Scope] = frozenset()
    kind: Literal["user", "api_key"] = "user"
    issuer: str | None = None
    key_id: UUID | None = None

    @classmethod
    def from_claims(
        cls,
        claims: Mapping[str, Any],
        mapping: ClaimMapping | None = None,
        *,
        issuer: str | None = None,
        allow_platform_admin: bool = True,
    ) -> Principal:
        """The principal a verified token describes, read through the issuer's claim mapping."""
        mapping = mapping or ClaimMapping()
        subject = claim(claims, mapping.subject)
        if not isinstance(subject, str) or not subject or len(subject) > 256:
            raise InvalidClaims("token has no subject")
        if has_surrogate(subject) or has_control_character(subject):
            # it is the user_id of the caller's records, under the rules of an identifier
            raise InvalidClaims("token subject is not valid text")
        role = _map_role(claim(claims, mapping.role), mapping.role_values)
        tenants = _map_tenants(claim(claims, mapping.tenants), mapping.tenant_prefix)
        if ALL_TENANTS in tenants:
            if role != "admin":
                raise InvalidClaims("only admins may hold all tenants")
            if not allow_platform_admin:
                raise InvalidClaims("this issuer may not grant all tenants")
        return cls(subject=subject, role=role, tenants=tenants, issuer=issuer)

    @classmethod
    def for_api_key(
        cls, *, tenant: str, key_id: UUID, prefix: str, scopes: frozenset[Scope]
    ) -> Principal:
        """An API key acts as a service on its one tenant; its visible prefix names it."""
        return cls(
            subject=prefix,
            role=None,
            tenants=frozenset({tenant}),
            scopes=scopes,
            kind="api_key",
            key_id=key_id,
        )

    @property
    def is_platform_admin(self) -> bool:
        return self.role == "admin" and ALL_TENANTS in self.tenants

    @property
    def own_events_only(self) -> bool:
        """Users read only events whose ``user_id`` is their own subject."""
        return self.role == "user"

    @property
    def actor_type(self) -> ActorType:
        """How access records describe this caller."""
        return "service" if self.kind == "api_key" else "user"

    @property
    def identity(self) -> str:
        """A stable, unique name for per-principal limits (issuers may reuse subjects)."""
        if self.kind == "api_key":
            return f"key:{self.key_id}"
        return f"jwt:{self.issuer or ''}:{self.subject}"

    def may(self, permission: Permission) -> bool:
        if permission is Permission.MANAGE_TENANTS:
            return self.is_platform_admin
        if self.kind == "api_key":
            return any(permission in _SCOPE_PERMISSIONS[scope] for scope in self.scopes)
        return self.role is not None and permission in _ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission, tenant: TenantId | None = None) -> None:
        if not self.may(permission):
            who = "this API key" if self.kind == "api_key" else f"role '{self.role}'"
            raise Forbidden(
                f"{who} may not {_DESCRIBE[permission]}", tenant=tenant, permission=permission
            )

    def tenant(self, requested: str | None) -> TenantId:
        """The tenant this request acts on (see ``domain.tenants.TenantId``)."""
        if requested is None:
            if len(self.tenants) != 1 or ALL_TENANTS in self.tenants:
                raise TenantRequired("tenant_id is required: the token grants several tenants")
            resolved = next(iter(self.tenants))
        elif requested in self.tenants or self.is_platform_admin:
            resolved = requested
        else:
            raise TenantNotFound(requested)
        if resolved == PLATFORM_TENANT and not self.is_platform_admin:
            raise TenantNotFound(resolved)
        return TenantId(resolved)

    def new_tenant(self, tenant: str) -> TenantId:
        """The id of a tenant this caller creates: platform admins only (403 otherwise)."""
        self.require(Permission.MANAGE_TENANTS)
        return TenantId(tenant)

    def administered_tenants(self) -> frozenset[TenantId] | None:
        """The tenants this caller may manage, None meaning all (platform admins); 403 for a
        caller who may manage none."""
        self.require(Permission.MANAGE_TENANT)
        if self.is_platform_admin:
            return None
        return frozenset(TenantId(t) for t in self.tenants)

    def authorize(self, requested: str | None, permission: Permission) -> TenantId:
        """Resolve the tenant (404 before 403), then check the action."""
        tenant = self.tenant(requested)
        self.require(permission, tenant)
        if tenant == PLATFORM_TENANT and permission not in _PLATFORM_LOG_PERMISSIONS:
            raise Forbidden(
                "the platform log is written only by the service itself",
                tenant=tenant,
                permission=permission,
            )
        return tenant

    def rate_limit_tenant(self, requested: str | None) -> str | None:
        """The tenant whose budget this request draws on, if it is known before the body.

        Only a granted tenant is ever named, so a budget can never be spent (nor its
        exhaustion observed) on another tenant's behalf.
        """
        if requested is None:
            if len(self.tenants) == 1 and ALL_TENANTS not in self.tenants:
                return next(iter(self.tenants))
            return None
        if requested in self.tenants or self.is_platform_admin:
            return requested
        return None
