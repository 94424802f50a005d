"""The audit trail of the audit log: reads and changes are recorded as events themselves.

Every read of a tenant's log (get, search, export, stats, stream subscribe) and every change
to a tenant or its keys is stored as an ordinary event in that tenant's own log, through
the same writer and with the same durability as client events. The record is written
before the response is sent, so a read that succeeded is a read that was recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Unpack

from auditline.config import IngestSettings
from auditline.domain.access import AccessFields, Actor
from auditline.domain.events import Event, EventDraft
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from auditline.ingest.writer import EventWriter
from auditline.storage.database import Connection, set_tenant
from auditline.storage.events import insert_events


class AccessRecorder:
    """Writes access events; one instance per process, shared by every service.

    Satisfies :class:`~auditline.domain.access.AccessLog`.
    """

    def __init__(self, writer: EventWriter, limits: IngestSettings) -> None:
        self._writer = writer
        self._limits = limits

    async def record(self, tenant: TenantId, actor: Actor, **fields: Unpack[AccessFields]) -> None:
        """Store one access event for *tenant* and wait until it is durably committed."""
        await self._writer.write(tenant, self._prepare(tenant, actor, fields))

    async def record_in(
        self, conn: Connection, tenant: TenantId, actor: Actor, **fields: Unpack[AccessFields]
    ) -> None:
        """Store one change record in the caller's open transaction on *conn*.

        For changes (tenant settings, API keys): the record commits or rolls back together
        with the change it describes, so neither can exist without the other. Points
        row-level security at *tenant* for the rest of the transaction.
        """
        await self.record_all_in(conn, tenant, actor, [fields])

    async def record_all_in(
        self, conn: Connection, tenant: TenantId, actor: Actor, records: list[AccessFields]
    ) -> None:
        """Store several change records in the caller's open transaction on *conn*, in one
        insert: they take consecutive ``seq`` numbers and commit or roll back together with
        the change (a removal too large for one record writes several: ``lifecycle``)."""
        events = [e for fields in records for e in self._prepare(tenant, actor, fields)]
        if not events:
            return
        await self._writer.ensure_partitions(event.timestamp for event in events)
        await set_tenant(conn, tenant)
        await insert_events(conn, tenant, events)

    def _prepare(self, tenant: TenantId, actor: Actor, fields: AccessFields) -> list[Event]:
        outcome = fields.get("outcome", "success")
        user_agent = fields.get("user_agent")
        draft = EventDraft(
            action=fields["action"],
            user_id=actor.subject,
            actor_type=actor.type,
            resource_type=fields["resource_type"],
            resource_id=fields.get("resource_id"),
            message=fields["message"],
            metadata=fields.get("metadata") or {},
            outcome=outcome,
            request_id=actor.request_id,
            ip_address=fields.get("ip_address"),
            user_agent=None
            if user_agent is None
            else user_agent[: self._limits.max_user_agent_chars],
            severity="INFO" if outcome == "success" else "WARNING",
            before=fields.get("before"),
            after=fields.get("after"),
        )
        return prepare_events(
            tenant, [draft], limits=self._limits, now=datetime.now(UTC), indexed_errors=False
        )
