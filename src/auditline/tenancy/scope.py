"""The second of the two ways to hold a :class:`~auditline.domain.tenants.TenantId`.

The first is ``Principal.tenant`` (``security.principal``): a caller's request, checked
against the caller's grants. This one is for work that no caller asked for, where the
service itself decides the tenant: the platform log's own records, a job working through
every tenant, an operator's command on the machine. Each use names its reason, so a reader
(and ``grep for_system``) finds every place that acts on a tenant without a caller's
grant. ``tests/unit/test_tenant_scope.py`` fails if a ``TenantId`` is made anywhere else.
"""

from __future__ import annotations

from typing import Final

from auditline.domain.tenants import PLATFORM_TENANT, TenantId


def for_system(tenant: str, *, reason: str) -> TenantId:
    """*tenant* as a ``TenantId`` for work the service does on its own behalf.

    *reason* says why no caller's grant is needed (it is required and may not be blank:
    it is documentation that the code cannot lose).
    """
    if not reason.strip():
        raise ValueError("for_system needs a reason")
    return TenantId(tenant)


PLATFORM: Final = for_system(PLATFORM_TENANT, reason="the service's own records")
"""The platform log: failed authentication, tenants not granted, platform changes."""
