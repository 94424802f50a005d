"""``auditline worker``: a dedicated worker process (tasks and, by default, the scheduler).

Runs the same worker as the one ``auditline serve`` starts in process; several may run at
once, on any machines that reach the database (and SQS, with that backend). SIGTERM or
SIGINT stops it gracefully: no new tasks, running ones get ``jobs.shutdown_grace_seconds``
to finish, the rest go back to the queue for other workers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

from auditline.cli.common import settings_from, with_services
from auditline.config import Settings
from auditline.jobs.service import Tasks
from auditline.services import Services
from auditline.tasks import background, build_tasks

log = logging.getLogger(__name__)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    worker = sub.add_parser(
        "worker", parents=[common], help="run background tasks (and the scheduler)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )  # fmt: skip
    worker.add_argument("--concurrency", type=int, default=None, help="tasks at once")
    worker.add_argument(
        "--no-scheduler", action="store_true", help="run tasks only, not periodic schedules"
    )
    worker.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.concurrency is not None:
        settings.jobs.concurrency = max(1, args.concurrency)
    if args.no_scheduler:
        settings.jobs.scheduler = False
    return asyncio.run(run_worker(settings))


async def run_worker(settings: Settings, tasks: Callable[[Services], Tasks] = build_tasks) -> int:
    """Work until SIGTERM or SIGINT; *tasks* builds the handlers (tests add their own)."""
    settings = settings.model_copy(deep=True)
    # a connection per running task, plus heartbeats, progress and the receive loop
    settings.database.pool_max_size = max(
        settings.database.pool_max_size, settings.jobs.concurrency + 4
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def work(services: Services) -> int:
        async with background(services, tasks(services)):
            log.info(
                "worker running: %s queue, concurrency %d%s",
                settings.jobs.backend,
                settings.jobs.concurrency,
                ", scheduler on" if settings.jobs.scheduler else "",
            )
            print("worker ready", flush=True)
            await stop.wait()
            log.info("worker stopping")
        return 0

    return await with_services(settings, work)
