"""``python -m tests.jobs.worker_main``: ``auditline worker`` (the same ``run_worker``) with
the test tasks registered as well; settings from the ``AUDITLINE_*`` environment."""

from __future__ import annotations

import asyncio
import logging
import sys

from auditline.cli.worker import run_worker
from auditline.config import Settings
from auditline.jobs.service import Tasks
from auditline.services import Services
from auditline.tasks import build_tasks
from tests.jobs.support import tasks_for_tests


def product_and_test_tasks(services: Services) -> Tasks:
    product, test = build_tasks(services), tasks_for_tests(services)
    return Tasks({**product.handlers, **test.handlers}, product.schedules)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(run_worker(Settings(), product_and_test_tasks)))
