"""The worker: receives tasks, runs their handlers, records the outcome on the job.

Up to ``concurrency`` tasks run at once. While a task runs, a heartbeat keeps its message
hidden (every third of the visibility timeout it is extended to a full one), so a long task
is not handed to a second worker; if this process dies the heartbeat stops, and the
message reappears for another worker when the visibility expires. A failed attempt is
retried after an exponential backoff; the last one (``max_receives``) fails the job and
dead-letters the message. On shutdown the worker stops receiving, lets running tasks finish
for ``shutdown_grace_seconds`` and then releases the rest at once to other workers.

Delivery is at least once, so every handler is idempotent; a message delivered again after
its job finished (a crash between the outcome and the delete, an outbox duplicate) is
deleted without running anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from psycopg_pool import AsyncConnectionPool

from auditline.config import JobsSettings
from auditline.domain.tenants import TenantId
from auditline.jobs.queue import Message, Queue, backoff
from auditline.jobs.service import Handler, JobContext, TenantScope
from auditline.storage import jobs as store
from auditline.storage.database import Connection
from auditline.storage.queue import worker_transaction

log = logging.getLogger(__name__)

_ERROR_CHARS = 4000


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:_ERROR_CHARS]


class Worker:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        queue: Queue,
        scope: TenantScope,
        handlers: Mapping[str, Handler],
        settings: JobsSettings,
    ) -> None:
        self._pool = pool
        self._queue = queue
        self._scope = scope
        self._handlers = dict(handlers)
        self._settings = settings
        self._stopping = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None
        self._relay: asyncio.Task[None] | None = None
        self.processed = 0  # attempts finished by this worker (for benchmarks and tests)
        # The job's lease ends a little before the message's visibility (set earlier, at
        # receive): a dead worker's task is then free when its message comes back, instead
        # of being put back for a whole timeout more. The heartbeat, every third of the
        # timeout, keeps a live worker's lease well ahead.
        self._lease_seconds = settings.visibility_timeout_seconds * 0.8

    async def start(self) -> None:
        await self._queue.start()
        self._relay = asyncio.create_task(self._queue.relay(), name="jobs relay")
        self._main = asyncio.create_task(self._loop(), name="jobs worker")

    async def stop(self) -> None:
        """Stop receiving; wait for running tasks up to the grace period; release the rest."""
        self._stopping.set()
        self._queue.wake()
        if self._main is not None:
            try:  # a receive ends within poll_seconds (SQS long polls cannot be woken)
                await asyncio.wait_for(
                    asyncio.shield(self._main), timeout=self._settings.poll_seconds + 10
                )
            except TimeoutError:
                log.warning("the receive loop did not stop in time; cancelling it")
                self._main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._main
        if self._running:
            _, pending = await asyncio.wait(
                self._running, timeout=self._settings.shutdown_grace_seconds
            )
            for task in pending:
                task.cancel()
            if pending:
                _, stuck = await asyncio.wait(pending, timeout=10)
                if stuck:
                    log.warning("%d tasks did not stop; their messages return after the "
                                "visibility timeout", len(stuck))  # fmt: skip
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay

    async def _loop(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            free = self._settings.concurrency - len(self._running)
            if free <= 0:
                stop = asyncio.create_task(self._stopping.wait())
                await asyncio.wait({*self._running, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                continue
            try:
                batch = await self._queue.receive(free, self._settings.poll_seconds)
                for message in batch.dead:
                    await self._lost(message)
                delay = 0.5
            except Exception:
                log.exception("receiving tasks failed; retrying in %.1fs", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, 30)
                continue
            for message in batch.messages:
                task = asyncio.create_task(self._process(message), name=f"job {message.job_id}")
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _process(self, message: Message) -> None:
        tenant = self._scope(message.tenant)
        try:
            async with worker_transaction(self._pool, tenant) as conn:
                started = await store.start_job(
                    conn, tenant, message.job_id,
                    lease_seconds=self._lease_seconds,
                )  # fmt: skip
            if started != "started":
                if started == "leased":
                    # Another delivery of this task is running it: come back when its lease
                    # would have run out, by which time it is finished (then dropped) or its
                    # worker is dead (then this delivery takes over).
                    await self._queue.retry_later(
                        message, self._settings.visibility_timeout_seconds, None
                    )
                else:
                    # Finished already (or never committed): nothing to do but forget it.
                    await self._queue.delete(message, None)
                return
            handler = self._handlers.get(message.kind)
            heartbeat = asyncio.create_task(self._heartbeat(tenant, message))
            try:
                if handler is None:
                    raise LookupError(f"no handler for task kind {message.kind!r}")
                ctx = JobContext(
                    job_id=message.job_id,
                    tenant=None if message.tenant is None else tenant,
                    attempt=message.receive_count,
                    _report=lambda value: self._progress(tenant, message, value),
                )
                result = await handler(ctx, dict(message.payload))
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
        except asyncio.CancelledError:
            await self._release(tenant, message)
            raise
        except Exception as exc:
            log.warning("task %s (%s) failed: %s", message.kind, message.job_id, _describe(exc))
            await self._failed(tenant, message, _describe(exc))
        else:
            await self._settle(tenant, message, "succeeded", result=result)
        finally:
            self.processed += 1

    async def _heartbeat(self, tenant: TenantId, message: Message) -> None:
        seconds = self._settings.visibility_timeout_seconds
        while True:
            await asyncio.sleep(max(0.2, seconds / 3))
            try:
                await self._queue.extend(message, seconds)
                async with worker_transaction(self._pool, tenant) as conn:
                    await store.extend_lease(conn, tenant, message.job_id, self._lease_seconds)
            except Exception:
                log.warning("could not extend the visibility of job %s", message.job_id)

    async def _progress(self, tenant: TenantId, message: Message, value: Any) -> None:
        async with worker_transaction(self._pool, tenant) as conn:
            await store.set_progress(conn, tenant, message.job_id, value)

    async def _settle(
        self,
        tenant: TenantId,
        message: Message,
        status: str,
        *,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome and settle the message: in one transaction when the queue
        is transactional, else right after the commit."""
        queue = self._queue

        async def settle(conn: Connection | None) -> None:
            if status == "succeeded":
                await queue.delete(message, conn)
            elif status == "failed":
                await queue.dead_letter(message, error or "", conn)
            else:
                delay = backoff(
                    message.receive_count,
                    self._settings.retry_base_seconds,
                    self._settings.retry_max_seconds,
                )
                await queue.retry_later(message, delay, conn)

        async with worker_transaction(self._pool, tenant) as conn:
            await store.finish_job(
                conn, tenant, message.job_id, status=status, result=result, error=error
            )
            if queue.transactional:
                await settle(conn)
        if not queue.transactional:
            await settle(None)

    async def _failed(self, tenant: TenantId, message: Message, error: str) -> None:
        final = message.receive_count >= self._settings.max_receives
        await self._settle(tenant, message, "failed" if final else "queued", error=error)

    async def _lost(self, message: Message) -> None:
        """A message received ``max_receives`` times without an outcome: its workers died
        (or its last failure was recorded and it is on its way to the dead-letter queue)."""
        tenant = self._scope(message.tenant)
        error = f"dead-lettered after {self._settings.max_receives} deliveries without success"
        async with worker_transaction(self._pool, tenant) as conn:
            await store.finish_job(
                conn, tenant, message.job_id, status="failed", error=error, unless_leased=True
            )

    async def _release(self, tenant: TenantId, message: Message) -> None:
        """Give a task cut short by shutdown back to the queue, visible at once."""
        try:
            await asyncio.shield(self._release_now(tenant, message))
        except Exception:
            log.warning("could not release job %s; it returns after its visibility timeout",
                        message.job_id)  # fmt: skip

    async def _release_now(self, tenant: TenantId, message: Message) -> None:
        async with worker_transaction(self._pool, tenant) as conn:
            await store.finish_job(
                conn, tenant, message.job_id, status="queued", error="interrupted by shutdown"
            )
            if self._queue.transactional:
                await self._queue.retry_later(message, 0, conn)
        if not self._queue.transactional:
            await self._queue.retry_later(message, 0, None)
