"""Who is calling, what they may do, and which tenant a request acts on.

The order of checks is deliberate: the tenant is resolved first, and a tenant the caller has
no grant for is reported exactly like a tenant that does not exist (404), so probing cannot
reveal which tenants exist. Only then is the action checked against the role (403).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final, Literal, cast, get_args

from auditline.domain.events import TenantId

Role = Literal["admin", "auditor", "user"]
ROLES: Final = frozenset(get_args(Role))
ALL_TENANTS: Final = "*"


class Permission(enum.Enum):
    WRITE_LOGS = "logs:write"
    READ_LOGS = "logs:read"
    EXPORT_LOGS = "logs:export"
    VIEW_STATS = "logs:stats"
    CLEANUP_LOGS = "logs:cleanup"
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
        }
    ),
    "auditor": frozenset({Permission.READ_LOGS, Permission.EXPORT_LOGS, Permission.VIEW_STATS}),
    # A plain user may read, but only events they performed (see Principal.own_events_only).
    "user": frozenset({Permission.WRITE_LOGS, Permission.READ_LOGS}),
}


class AuthError(Exception):
    """Base of the authorization failures; messages never name other tenants' data."""


class InvalidClaims(AuthError):
    """The token verified but its claims do not describe a valid principal (401)."""


class TenantNotFound(AuthError):
    """No such tenant for this caller: absent, or not granted (404)."""


class TenantRequired(AuthError):
    """The caller has several tenants and the request did not name one (422)."""


class Forbidden(AuthError):
    """The caller's role does not allow this action (403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role
    tenants: frozenset[str]

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Principal:
        role, tenants, subject = claims.get("role"), claims.get("tenants"), claims.get("sub")
        if role not in ROLES:
            raise InvalidClaims("token has no valid role")
        if not isinstance(subject, str) or not subject:
            raise InvalidClaims("token has no subject")
        if (
            not isinstance(tenants, list)
            or not tenants
            or not all(isinstance(t, str) and t for t in tenants)
        ):
            raise InvalidClaims("token grants no tenants")
        if ALL_TENANTS in tenants and role != "admin":
            raise InvalidClaims("only admins may hold all tenants")
        return cls(subject=subject, role=cast(Role, role), tenants=frozenset(tenants))

    @property
    def is_platform_admin(self) -> bool:
        return self.role == "admin" and ALL_TENANTS in self.tenants

    @property
    def own_events_only(self) -> bool:
        """Users read only events whose ``user_id`` is their own subject."""
        return self.role == "user"

    def may(self, permission: Permission) -> bool:
        if permission is Permission.MANAGE_TENANTS:
            return self.is_platform_admin
        return permission in _ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.may(permission):
            raise Forbidden(f"role '{self.role}' may not {permission.value.replace(':', ' ')}")

    def tenant(self, requested: str | None) -> TenantId:
        """The tenant this request acts on; the only place a ``TenantId`` is made."""
        if requested is None:
            if len(self.tenants) == 1 and ALL_TENANTS not in self.tenants:
                return TenantId(next(iter(self.tenants)))
            raise TenantRequired("tenant_id is required: the token grants several tenants")
        if requested in self.tenants or self.is_platform_admin:
            return TenantId(requested)
        raise TenantNotFound(f"tenant '{requested}' not found")

    def authorize(self, requested: str | None, permission: Permission) -> TenantId:
        """Resolve the tenant (404 before 403), then check the action."""
        tenant = self.tenant(requested)
        self.require(permission)
        return tenant
