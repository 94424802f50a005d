"""Every task handler and periodic schedule, registered in one place at the composition root.

A handler is a thin, idempotent wrapper over a service (``jobs.service.Handler``); it lives
here rather than beside its service so that nothing below the composition root imports the
worker. :func:`background` runs a worker and the scheduler for ``auditline serve`` (in
process, by default) and ``auditline worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from auditline.evidence.sealer import keep_sealing
from auditline.indexing.service import IndexingIncomplete
from auditline.jobs.scheduler import Scheduler
from auditline.jobs.service import Handler, JobContext, Schedule, Tasks
from auditline.jobs.upkeep import ensure_partitions_ahead
from auditline.jobs.worker import Worker
from auditline.lifecycle.backup import BackupBusy
from auditline.lifecycle.retention import CLEANUP_JOB, RETENTION_JOB, deletion_view
from auditline.search.backend import SearchUnavailable
from auditline.services import Services
from auditline.tenancy.scope import PLATFORM

PARTITIONS_MAINTAIN = "partitions.maintain"
ARCHIVE_JOB = "archive.due"
BACKUP_CREATE = "backup.create"
SEARCH_INDEX = "search.index"
JOBS_PRUNE = "jobs.prune"

_DAY_SECONDS: Final = 86_400.0

log = logging.getLogger(__name__)


def build_tasks(services: Services) -> Tasks:
    """The handlers and schedules of this build, bound to *services*."""
    settings = services.settings

    async def maintain_partitions(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        # Idempotent: creating a partition that exists is a no-op.
        await ensure_partitions_ahead(services.writer, settings)
        return {"months_ahead": settings.database.partition_months_ahead}

    async def cleanup(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        # Idempotent: a rerun removes (and records) only what is still older than the bound.
        return await services.retention.run_cleanup_job(
            ctx.tenant or PLATFORM, payload, job_id=ctx.job_id, progress=ctx.progress
        )

    async def apply_retention(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        # Idempotent: each run removes what is due by then, and only that.
        done = await services.retention.apply_retention()
        return {"tenants": {d.tenant: deletion_view(d) for d in done}}

    async def create_backup(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        # Idempotent in effect: a second run makes one more complete backup and rotation
        # trims back to backup.keep; a run while another writes into the same directory
        # (a redelivery on another host sharing it) is skipped rather than doubled.
        try:
            return await services.backups.backup_to()
        except BackupBusy as exc:
            return {"skipped": str(exc)}

    async def archive_due(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        # Idempotent: a rerun archives only what is still hot and due.
        return await services.archive.run_due_job(progress=ctx.progress)

    async def index_search(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        # Idempotent: a run indexes from each tenant's stored progress; a document's id is
        # its tenant and event id, so a repeated batch overwrites itself. One job follows
        # the logs for index_job_seconds (a pass every index_interval_seconds) rather than
        # one job per pass: a job row every two seconds would bury every other job.
        # A pass whose failures are all the cluster being unavailable (down, overloaded)
        # fails the job at once, which the queue retries with backoff (each retry's pass
        # still tries every tenant). A pass in which tenants failed for reasons of their
        # own goes on with the next passes, so the others stay current, and the job fails
        # at its end if its last pass was still incomplete (IndexingIncomplete: which
        # tenants, and why).
        if services.indexer is None:
            return {"skipped": "no opensearch.url"}
        config = settings.opensearch
        await services.indexer.index.ensure_template()
        indexed = removed = passes = 0
        incomplete: IndexingIncomplete | None = None
        until = time.monotonic() + max(
            0.0, config.index_job_seconds - config.index_interval_seconds
        )
        while True:
            try:
                runs = await services.indexer.index_all()
            except IndexingIncomplete as exc:
                if all(isinstance(e, SearchUnavailable) for e in exc.failures.values()):
                    raise
                runs, incomplete = exc.runs, exc
            else:
                incomplete = None  # a later pass that got every tenant through heals it
            indexed += sum(r.indexed for r in runs)
            removed += sum(r.removed_ranges for r in runs)
            passes += 1
            if time.monotonic() >= until:
                break
            await asyncio.sleep(config.index_interval_seconds)
        # Once a job (a minute by default): months that removals have emptied go whole.
        # Housekeeping only: a failure is logged and tried again by the next job, and
        # does not fail this one, whose indexing went through.
        dropped: list[str] = []
        drop_failed: str | None = None
        try:
            dropped = await services.indexer.drop_empty_months()
        except Exception as exc:
            drop_failed = f"{type(exc).__name__}: {exc}"
            log.warning("dropping emptied search indices failed: %s", drop_failed)
        if incomplete is not None:
            raise incomplete
        result: dict[str, Any] = {
            "indexed": indexed, "removed_ranges": removed, "passes": passes,
            "dropped_indices": dropped,
            "behind": {r.tenant: r.behind for r in runs if r.behind},
        }  # fmt: skip
        if drop_failed is not None:
            result["drop_failed"] = drop_failed
        return result

    async def prune_jobs(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        # Idempotent: a rerun deletes only what is still older than the bound.
        keep = timedelta(days=settings.jobs.keep_finished_days)
        return await services.jobs.prune(datetime.now(UTC) - keep)

    handlers: dict[str, Handler] = {
        PARTITIONS_MAINTAIN: maintain_partitions,
        CLEANUP_JOB: cleanup,
        RETENTION_JOB: apply_retention,
        ARCHIVE_JOB: archive_due,
        BACKUP_CREATE: create_backup,
        SEARCH_INDEX: index_search,
        JOBS_PRUNE: prune_jobs,
    }
    # (name, kind, interval) of each periodic task this configuration runs.
    periodic = [
        ("partitions", PARTITIONS_MAINTAIN, settings.maintenance_interval_seconds),
        ("retention", RETENTION_JOB, settings.retention.interval_seconds)
        if settings.retention.scheduled else None,
        ("archive", ARCHIVE_JOB, settings.archive.interval_seconds)
        if settings.archive.scheduled else None,
        ("backup", BACKUP_CREATE, settings.backup_interval_seconds)
        if settings.backup_interval_seconds > 0 else None,
        ("search-index", SEARCH_INDEX, settings.opensearch.index_job_seconds)
        if services.indexer is not None else None,
        ("jobs-prune", JOBS_PRUNE, _DAY_SECONDS),
    ]  # fmt: skip
    schedules = tuple(
        Schedule(name=name, kind=kind, payload={}, interval_seconds=interval)
        for name, kind, interval in filter(None, periodic)
    )
    return Tasks(handlers=handlers, schedules=schedules)


@asynccontextmanager
async def background(services: Services, tasks: Tasks | None = None) -> AsyncIterator[Worker]:
    """A running worker, the scheduler (unless ``jobs.scheduler`` is off) and the sealing
    loop until the block ends; then a graceful stop (``jobs.shutdown_grace_seconds``).

    Sealing is a loop of its own rather than a scheduled task: it runs about once a second,
    and a job row per second would bury every other job. Every worker runs it; the
    per-tenant sealing lock makes them share the tenants instead of doing the work twice.
    """
    tasks = tasks or build_tasks(services)
    settings = services.settings.jobs
    worker = Worker(services.pool, services.jobs.queue, services.jobs.scope, tasks.handlers,
                    settings)  # fmt: skip
    scheduler = Scheduler(services.pool, services.jobs, tasks.schedules)
    await worker.start()
    sealing = asyncio.create_task(
        keep_sealing(services.sealer, services.settings.integrity.seal_interval_seconds)
    )
    try:
        if settings.scheduler:
            scheduler.start()
        try:
            yield worker
        finally:
            await scheduler.stop()
    finally:
        sealing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sealing
        await worker.stop()
