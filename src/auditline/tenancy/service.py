"""Tenant operations, each one unit of work: the change and its record commit together.

A tenant's creation is recorded in the platform log (nobody administers the tenant yet); a
change of its settings in the tenant's own log, with the changed fields' previous values
in ``before`` and the new ones in ``after``. The API and the ``auditline tenants`` command
call the same methods, so an operator's change is recorded exactly like an admin's.

Settings are checked before anything is written: by the JSON rules of an event's metadata
(``domain.validation.settings_limits``: the record of a change copies them, and a record
the ingest rules refuse would fail the change with errors about the record, not the input),
and ``settings.masking`` by its own rules (``domain.masking_settings``); both are a 422
naming the field. A committed change drops the tenant's cached masking rules in this
process at once (``ingest.tenant_rules``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from psycopg_pool import AsyncConnectionPool

from auditline.config import IngestSettings
from auditline.domain.access import Actor
from auditline.domain.masking_settings import masking_settings
from auditline.domain.tenants import UPDATABLE, Tenant, TenantId, UnknownTenant
from auditline.domain.validation import InvalidInput, check_json, settings_limits
from auditline.ingest.access import AccessRecorder
from auditline.ingest.tenant_rules import TenantRules
from auditline.storage import tenants as store
from auditline.storage.database import Connection
from auditline.tenancy.scope import PLATFORM


class TenantService:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        access: AccessRecorder,
        rules: TenantRules,
        limits: IngestSettings,
    ) -> None:
        self._pool = pool
        self._access = access
        self._rules = rules
        self._settings_limits = settings_limits(limits)

    def _check_settings(self, settings: dict[str, Any] | None) -> None:
        """Raise :class:`InvalidInput` (pointing into ``settings``) if they break a JSON rule,
        ``InvalidSettings`` if their ``masking`` member does."""
        if settings is None:
            return
        if errors := check_json("settings", settings, self._settings_limits):
            raise InvalidInput(errors)
        masking_settings(settings)

    async def create(
        self,
        tenant: TenantId,
        actor: Actor,
        *,
        name: str,
        retention_days: int,
        archive_after_days: int | None = None,
        settings: dict[str, Any] | None = None,
        legal_hold: bool = False,
    ) -> Tenant:
        """Create *tenant*, its empty log and its pseudonym key; raises ``TenantExists`` if
        the id is taken, ``InvalidInput``/``InvalidSettings`` if *settings* break the rules."""
        self._check_settings(settings)
        async with self._pool.connection() as conn, conn.transaction():
            created = await store.create_tenant(
                conn, tenant, name=name, retention_days=retention_days,
                archive_after_days=archive_after_days, settings=settings or {},
                legal_hold=legal_hold,
            )  # fmt: skip
            await self._access.record_in(
                conn, PLATFORM, actor, action="CREATE", resource_type="tenant",
                resource_id=created.id, message=f"created tenant {created.id}",
                after=_view(created),
            )  # fmt: skip
        self._rules.invalidate(tenant)  # a write tried before it existed cached the defaults
        return created

    async def list(self, only: Collection[TenantId] | None = None) -> list[Tenant]:
        """Every client tenant, or those in *only*, by id (the platform tenant never)."""
        async with self._pool.connection() as conn:
            return await store.list_tenants(conn, only)

    async def get(self, tenant: TenantId) -> Tenant:
        """The tenant; raises ``UnknownTenant`` if it does not exist."""
        async with self._pool.connection() as conn:
            found = await store.get_tenant(conn, tenant)
        if found is None:
            raise UnknownTenant(tenant)
        return found

    async def update(self, tenant: TenantId, actor: Actor, changes: dict[str, Any]) -> Tenant:
        """Apply *changes* (fields of ``UPDATABLE``); the tenant as it is afterwards.

        Recorded (UPDATE, tenant) in the tenant's own log when anything actually changed.
        Raises ``InvalidSettings`` (nothing changed) if new settings break the rules.
        """
        self._check_settings(changes.get("settings"))
        async with self._pool.connection() as conn, conn.transaction():
            result = await store.update_tenant(conn, tenant, changes)
            if result is None:
                raise UnknownTenant(tenant)
            before, after = result
            changed = [k for k in changes if getattr(before, k) != getattr(after, k)]
            if changed:
                await self._access.record_in(
                    conn, tenant, actor, action="UPDATE", resource_type="tenant",
                    resource_id=tenant, message=f"changed tenant {', '.join(sorted(changed))}",
                    before=_view(before, changed), after=_view(after, changed),
                )  # fmt: skip
        if "settings" in changed:  # committed: this process masks by the new rules at once
            self._rules.invalidate(tenant)
        return after


def _view(tenant: Tenant, fields: Iterable[str] = UPDATABLE) -> dict[str, Any]:
    """The tenant's changeable fields (all, or *fields*) as a change record shows them."""
    return {name: getattr(tenant, name) for name in fields}
