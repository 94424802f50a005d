"""Every task handler and periodic schedule, registered in one place at the composition root.

A handler is a thin, idempotent wrapper over a service (``jobs.service.Handler``); it lives
here rather than beside its service so that nothing below the composition root imports the
worker. :func:`background` runs a worker and the scheduler for ``auditline serve`` (in
process, by default) and ``auditline worker``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from auditline.jobs.scheduler import Scheduler
from auditline.jobs.service import Handler, JobContext, Schedule, Tasks
from auditline.jobs.upkeep import ensure_partitions_ahead
from auditline.jobs.worker import Worker
from auditline.lifecycle.backup import BackupBusy
from auditline.services import Services

PARTITIONS_MAINTAIN = "partitions.maintain"
BACKUP_CREATE = "backup.create"


def build_tasks(services: Services) -> Tasks:
    """The handlers and schedules of this build, bound to *services*."""
    settings = services.settings

    async def maintain_partitions(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        # Idempotent: creating a partition that exists is a no-op.
        await ensure_partitions_ahead(services.writer, settings)
        return {"months_ahead": settings.database.partition_months_ahead}

    async def create_backup(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        # Idempotent in effect: a second run makes one more complete backup and rotation
        # trims back to backup.keep; a run while another writes into the same directory
        # (a redelivery on another host sharing it) is skipped rather than doubled.
        try:
            return await services.backups.backup_to()
        except BackupBusy as exc:
            return {"skipped": str(exc)}

    handlers: dict[str, Handler] = {
        PARTITIONS_MAINTAIN: maintain_partitions,
        BACKUP_CREATE: create_backup,
    }
    schedules = [
        Schedule(
            name="partitions",
            kind=PARTITIONS_MAINTAIN,
            payload={},
            interval_seconds=settings.maintenance_interval_seconds,
        ),
    ]
    if settings.backup_interval_seconds > 0:
        schedules.append(
            Schedule(
                name="backup",
                kind=BACKUP_CREATE,
                payload={},
                interval_seconds=settings.backup_interval_seconds,
            )
        )
    return Tasks(handlers=handlers, schedules=tuple(schedules))


@asynccontextmanager
async def background(services: Services, tasks: Tasks | None = None) -> AsyncIterator[Worker]:
    """A running worker (and the scheduler, unless ``jobs.scheduler`` is off) until the
    block ends; then a graceful stop (``jobs.shutdown_grace_seconds``)."""
    tasks = tasks or build_tasks(services)
    settings = services.settings.jobs
    worker = Worker(services.pool, services.jobs.queue, services.jobs.scope, tasks.handlers,
                    settings)  # fmt: skip
    scheduler = Scheduler(services.pool, services.jobs, tasks.schedules)
    await worker.start()
    try:
        if settings.scheduler:
            scheduler.start()
        try:
            yield worker
        finally:
            await scheduler.stop()
    finally:
        await worker.stop()
