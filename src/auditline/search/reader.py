"""Reads of stored events, always inside a tenant-scoped transaction."""

from __future__ import annotations

from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from auditline.domain.events import StoredEvent, TenantId
from auditline.storage.database import Connection, tenant_transaction
from auditline.storage.events import get_event


class EventReader:
    def __init__(self, pool: AsyncConnectionPool[Connection]) -> None:
        self._pool = pool

    async def get(
        self, tenant: TenantId, event_id: UUID, *, only_user: str | None = None
    ) -> StoredEvent | None:
        """The event, or None when it does not exist *or* the caller may not see it."""
        async with tenant_transaction(self._pool, tenant) as conn:
            return await get_event(conn, tenant, event_id, user_id=only_user)
