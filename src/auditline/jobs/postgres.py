"""The PostgreSQL queue backend (the default): messages are rows of ``job_queue``.

Sending is an INSERT in the sender's own transaction, so a job and the write it follows
commit or roll back together; receiving is ``FOR UPDATE SKIP LOCKED`` (SQL in
``storage.queue``); idle workers wake on NOTIFY. Settling a message (delete, retry,
dead-letter) happens on the connection that records the job's outcome, so the job row and
the queue row never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from auditline.jobs.notify import Listener
from auditline.jobs.queue import PRUNE_BATCH, Batch, Message
from auditline.storage import queue as store
from auditline.storage.database import Connection
from auditline.storage.queue import worker_transaction


def _message(row: store.QueueRow) -> Message:
    return Message(
        job_id=row.job_id,
        kind=row.kind,
        tenant=row.job_tenant,
        payload=row.payload,
        receive_count=row.receive_count,
        handle=(row.id, row.receipt),
    )


def _handle(message: Message) -> tuple[int, UUID]:
    """The row and the receipt of this delivery."""
    row_id, receipt = message.handle
    return int(row_id), receipt


class PostgresQueue:
    name = "postgres"
    transactional = True

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        conninfo: str,
        *,
        visibility_seconds: float,
        max_receives: int,
    ) -> None:
        self._pool = pool
        self._visibility = visibility_seconds
        self._max_receives = max_receives
        self._listener = Listener(conninfo, store.QUEUE_CHANNEL)
        self._listening = False

    async def start(self) -> None:
        if not self._listening:
            await self._listener.start()
            self._listening = True

    async def close(self) -> None:
        if self._listening:
            await self._listener.close()
            self._listening = False

    async def send(
        self, conn: Connection, *, job_id: UUID, kind: str, tenant: str | None,
        payload: Mapping[str, Any],
    ) -> None:  # fmt: skip
        await store.send(conn, job_id=job_id, kind=kind, tenant_id=tenant, payload=payload)

    async def _receive_now(self, max_messages: int) -> Batch:
        async with worker_transaction(self._pool) as conn:
            got, dead = await store.receive(
                conn,
                limit=max_messages,
                visibility_seconds=self._visibility,
                max_receives=self._max_receives,
            )
        return Batch([_message(r) for r in got], [_message(r) for r in dead])

    async def receive(self, max_messages: int, wait_seconds: float) -> Batch:
        batch = await self._receive_now(max_messages)
        if batch.messages or batch.dead or wait_seconds <= 0:
            return batch
        await self._listener.wait(wait_seconds)
        return await self._receive_now(max_messages)

    def wake(self) -> None:
        self._listener.event.set()

    async def delete(self, message: Message, conn: Connection | None) -> None:
        if conn is None:
            async with worker_transaction(self._pool) as own:
                await store.delete(own, *_handle(message))
        else:
            await store.delete(conn, *_handle(message))

    async def retry_later(self, message: Message, delay: float, conn: Connection | None) -> None:
        if conn is None:
            async with worker_transaction(self._pool) as own:
                await store.change_visibility(own, *_handle(message), delay)
        else:
            await store.change_visibility(conn, *_handle(message), delay)

    async def extend(self, message: Message, seconds: float) -> None:
        async with worker_transaction(self._pool) as conn:
            await store.change_visibility(conn, *_handle(message), seconds)

    async def dead_letter(self, message: Message, error: str, conn: Connection | None) -> None:
        if conn is None:
            async with worker_transaction(self._pool) as own:
                await store.dead_letter(own, *_handle(message), error)
        else:
            await store.dead_letter(conn, *_handle(message), error)

    async def depth(self) -> int:
        async with worker_transaction(self._pool) as conn:
            return await store.depth(conn)

    async def dead_letters(self, limit: int = 10) -> list[Message]:
        async with worker_transaction(self._pool) as conn:
            return [_message(r) for r in await store.dead_letters(conn, limit)]

    async def prune_dead_letters(self, dead_before: datetime) -> int:
        pruned = 0
        while True:
            async with worker_transaction(self._pool) as conn:
                batch = await store.prune_dead_letters(
                    conn, dead_before=dead_before, limit=PRUNE_BATCH
                )
            pruned += batch
            if batch < PRUNE_BATCH:
                return pruned

    async def relay(self) -> None:
        return None
