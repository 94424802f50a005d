"""Opening a stream and replaying what a resuming client missed.

A stream is a read of the audit log, so opening one is recorded in the tenant's log (as
a search is) before any event is sent. Replay reads stored events by ``seq`` with the
search compiler's conditions, up to the subscription's ``after``; live delivery starts
above it (``stream.hub``), so a client resuming with ``since=`` gets every matching event
once, in ``seq`` order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from psycopg_pool import AsyncConnectionPool

from auditline.config import StreamSettings
from auditline.domain.access import ACCESS_RESOURCE, AccessLog, Actor
from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
from auditline.search.model import SearchQuery
from auditline.storage.database import Connection, tenant_transaction
from auditline.storage.stream import replay
from auditline.stream.hub import StreamHub, Subscription


class CursorAhead(ValueError):
    """``since`` names an event the tenant's log does not hold yet."""


class StreamService:
    def __init__(
        self,
        hub: StreamHub,
        pool: AsyncConnectionPool[Connection],
        access: AccessLog,
        settings: StreamSettings,
    ) -> None:
        self.hub = hub
        self._pool = pool
        self._access = access
        self.settings = settings

    async def open(
        self, tenant: TenantId, query: SearchQuery, actor: Actor, *, since: int | None
    ) -> Subscription:
        """Subscribe (live delivery buffered from now on), check *since*, record the read.

        Raises ``TooManyStreams`` past the tenant's cap and :class:`CursorAhead` for a
        cursor beyond the log's head; nothing is recorded then.
        """
        sub = await self.hub.subscribe(tenant, query)
        try:
            if since is not None and since > sub.after:
                raise CursorAhead(f"since={since} is beyond the log's last event ({sub.after})")
            metadata = {"query": query.describe(), "since": since, "cursor": sub.after}
            await self._access.record(
                tenant, actor, action="VIEW", resource_type=ACCESS_RESOURCE,
                message="opened a stream of audit events", metadata=metadata,
            )  # fmt: skip
        except BaseException:
            self.hub.unsubscribe(sub)
            raise
        return sub

    async def replay(self, sub: Subscription, since: int) -> AsyncIterator[StoredEvent]:
        """The stored events matching the subscription with ``since < seq <= sub.after``."""
        cursor, size = since, self.settings.replay_batch
        while cursor < sub.after:
            async with tenant_transaction(self._pool, sub.tenant) as conn:
                batch = await replay(conn, sub.tenant, sub.query, cursor, sub.after, limit=size)
            for stored in batch:
                yield stored
            if len(batch) < size:
                return
            cursor = batch[-1].seq

    def close(self, sub: Subscription) -> None:
        self.hub.unsubscribe(sub)
