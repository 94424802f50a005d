"""The write path: events in, durable commit, sequence numbers out.

A write returns only after PostgreSQL has committed it with ``synchronous_commit = on``,
so a caller may acknowledge it (201) to its client: an acknowledged event survives a crash
of this process or of the database server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from auditline.domain.events import Event, TenantId, WriteResult
from auditline.storage.database import Connection, tenant_transaction
from auditline.storage.events import ensure_partition, insert_events, partition_months

log = logging.getLogger(__name__)


def month_of(ts: datetime) -> datetime:
    utc = ts.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def months_from(start: datetime, count: int) -> list[datetime]:
    """*count* consecutive month starts beginning with the month of *start*."""
    first = month_of(start)
    index = first.year * 12 + first.month - 1
    return [datetime((index + i) // 12, (index + i) % 12 + 1, 1, tzinfo=UTC) for i in range(count)]


class EventWriter:
    """Stores batches of prepared events, creating time partitions on first use."""

    def __init__(self, pool: AsyncConnectionPool[Connection]) -> None:
        self._pool = pool
        self._months: set[datetime] = set()

    async def load_partitions(self) -> None:
        async with self._pool.connection() as conn:
            self._months = {month_of(m) for m in await partition_months(conn)}

    async def ensure_partitions(self, months: Iterable[datetime]) -> None:
        """Create the partitions for *months* that do not exist yet.

        Runs in its own short transaction, before the write: DDL inside the writing
        transaction would hold locks on the parent table until that commits.
        """
        missing = sorted({month_of(m) for m in months} - self._months)
        if not missing:
            return
        async with self._pool.connection() as conn:
            for month in missing:
                async with conn.transaction():
                    name = await ensure_partition(conn, month)
                log.info("events partition %s is ready", name)
                self._months.add(month)

    async def write(self, tenant: TenantId, events: Sequence[Event]) -> WriteResult:
        """Store *events* for *tenant* in one transaction and commit it durably."""
        await self.ensure_partitions(event.timestamp for event in events)
        async with tenant_transaction(self._pool, tenant) as conn:
            return await insert_events(conn, tenant, events)
