"""Folding the hourly rollups' deltas in the background (migration 0021).

Every write appends its rollup counts as deltas instead of updating the hour's counters:
a row that every commit updates grows a chain of versions that each later update walks
while any old snapshot is open (a backup, a long export), and 30 s of one took ingest p99
from tens of milliseconds to seconds (``bench.horizon``). This task moves the deltas into
the counters every ``ingest.rollup_fold_seconds``, so each counter is updated once per
fold instead of once per commit, and the deltas readers add up stay few.

Every process that opens the services folds (API processes and workers alike); a tenant
being folded by one is skipped by the others. Readers are exact whether or not a fold
has run, so a fold that fails (a database restart) is only retried at the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from psycopg_pool import AsyncConnectionPool

from auditline.metrics import Metrics
from auditline.storage import rollups as store
from auditline.storage.database import Connection, tenant_transaction
from auditline.tenancy.scope import for_system

log = logging.getLogger(__name__)


class RollupFolder:
    """Folds every tenant's pending deltas each *interval* seconds until closed."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        *,
        interval: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._pool = pool
        self._interval = interval
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._fold_forever(), name="rollup-folder")

    async def close(self) -> None:
        """Stop folding; deltas left over are folded by the next process that runs."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def fold_all(self) -> int:
        """Fold every tenant's deltas now, one short transaction per tenant; the number of
        deltas moved (tenants another process is folding are left to it). A tenant whose
        fold fails does not hold back the others: the first failure is raised after them."""
        async with self._pool.connection() as conn:
            tenants = await store.pending_tenants(conn)
        moved = 0
        failure: Exception | None = None
        for name in tenants:
            tenant = for_system(name, reason="folding the rollups' deltas of every tenant")
            try:
                async with tenant_transaction(self._pool, tenant) as conn:
                    moved += await store.fold(conn, tenant) or 0
            except Exception as exc:  # raised below, once the other tenants are folded
                failure = failure or exc
        if self._metrics is not None:
            self._metrics.rollup_deltas_folded.inc(moved)
        if failure is not None:
            raise failure
        return moved

    async def _fold_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.fold_all()
            except Exception:  # the database may be restarting: the next tick retries
                if self._metrics is not None:
                    self._metrics.rollup_fold_failures.inc()
                log.warning("folding rollup deltas failed; retrying", exc_info=True)
