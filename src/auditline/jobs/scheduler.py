"""The scheduler: periodic tasks, each due run submitted once across any number of processes.

Every worker process may run one. A tick, in one transaction: lock the due ``schedules``
rows that no other scheduler holds (``FOR UPDATE SKIP LOCKED``), submit each one's job on
that same connection, move ``next_run_at`` one interval on, commit. A second scheduler
either skips the locked rows or, once the first commits, finds them no longer due; a
crash before the commit submits nothing and leaves the run due. ``next_run_at`` lives in
the database, so restarts neither repeat nor skip a run (missed runs are not caught up:
one run follows a long outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from auditline.jobs.service import Jobs, Schedule
from auditline.storage import queue as store
from auditline.storage.database import Connection

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        jobs: Jobs,
        schedules: Sequence[Schedule],
        *,
        max_sleep_seconds: float = 30.0,
    ) -> None:
        self._pool = pool
        self._jobs = jobs
        self._schedules = {s.name: s for s in schedules}
        self._max_sleep = max_sleep_seconds
        self._task: asyncio.Task[None] | None = None

    async def declare(self) -> None:
        """Store the schedules this build declares (their stored next run is kept)."""
        async with self._pool.connection() as conn, conn.transaction():
            for s in self._schedules.values():
                await store.declare_schedule(conn, s.name, s.kind, s.payload, s.interval_seconds)

    async def tick(self) -> dict[str, UUID]:
        """Submit every due run this scheduler wins; the jobs submitted, by schedule."""
        submitted: dict[str, UUID] = {}
        names = list(self._schedules)
        if not names:
            return submitted
        async with self._pool.connection() as conn, conn.transaction():
            for due in await store.claim_due_schedules(conn, names):
                job_id = await self._jobs.submit(due.kind, due.payload, tenant=None, conn=conn)
                await store.schedule_ran(conn, due.name, job_id)
                submitted[due.name] = job_id
        return submitted

    async def _seconds_to_next(self) -> float:
        async with self._pool.connection() as conn, conn.transaction():
            at = await store.next_schedule_at(conn, list(self._schedules))
        if at is None:
            return self._max_sleep
        return max(0.05, min(self._max_sleep, (at - datetime.now(UTC)).total_seconds()))

    async def run(self) -> None:
        if not self._schedules:
            return
        delay = 1.0
        declared = False
        while True:
            try:
                if not declared:
                    await self.declare()
                    declared = True
                for name, job_id in (await self.tick()).items():
                    log.info("scheduled %s: job %s", name, job_id)
                await asyncio.sleep(await self._seconds_to_next())
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler tick failed; retrying in %.0fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="jobs scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
