"""Tenants as the rest of the service sees them: the checked id, the settings, the errors.

A tenant is one client organisation with its own log. Nothing here does I/O; the tenant
operations are ``auditline.tenancy``, their SQL ``auditline.storage.tenants``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NewType

TenantId = NewType("TenantId", str)
"""A tenant the current work may act on.

There are exactly two ways to make one (``tests/unit/test_tenant_scope.py`` fails on any
other): ``Principal.tenant`` (``security.principal``), after checking the caller's grants,
and ``tenancy.scope.for_system``, for work no caller asked for (jobs, operator commands),
with the reason named. Every repository call takes one, so a query without a checked
tenant does not type-check.
"""

TENANT_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""A tenant id is a lower-case slug of 1-63 characters (the table's CHECK says the same)."""

PLATFORM_TENANT: Final = "platform"
"""The system tenant created by migration 0002: failed authentication, cross-tenant attempts
and platform-level changes are recorded in its log."""


@dataclass(frozen=True, slots=True)
class Tenant:
    id: TenantId
    name: str
    retention_days: int
    archive_after_days: int | None
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    legal_hold: bool = False
    """Nothing of the log may be removed while set (``domain.retention.LegalHold``)."""


UPDATABLE: Final = ("name", "retention_days", "archive_after_days", "legal_hold", "settings")
"""The tenant fields an admin may change."""


class UnknownTenant(LookupError):
    """The tenant does not exist (it has no log). The argument is the id."""


class TenantExists(Exception):
    """A tenant with that id already exists. The argument is the id."""
