"""Fixtures of the jobs tests: the backend parameter, services with that queue, workers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from auditline.config import Settings
from auditline.jobs.worker import Worker
from auditline.services import Services, open_services
from auditline.tasks import background
from tests.jobs.support import create_tables, jobs_settings, with_jobs
from tests.jobs.worker_main import product_and_test_tasks

BACKENDS = ["postgres", "sqs"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def job_settings(
    request: pytest.FixtureRequest, settings: Settings, backend: str, database_url: str
) -> Settings:
    create_tables(database_url)
    endpoint = request.getfixturevalue("elasticmq") if backend == "sqs" else None
    overrides = getattr(request, "param", {})
    return with_jobs(settings, jobs_settings(backend, endpoint, **overrides))


@pytest.fixture
async def services(job_settings: Settings) -> AsyncIterator[Services]:
    async with open_services(job_settings) as opened:
        await opened.jobs.queue.start()
        try:
            yield opened
        finally:
            await opened.jobs.queue.close()


WorkerFactory = Callable[..., AbstractAsyncContextManager[Worker]]


@pytest.fixture
def worker(services: Services) -> WorkerFactory:
    """``async with worker(**jobs_settings): ...`` runs a worker with the product's and the
    test tasks (and the product's schedules, when ``scheduler=True``)."""

    def make(**overrides: Any) -> AbstractAsyncContextManager[Worker]:
        target = services
        if overrides:
            settings = services.settings.model_copy(deep=True)
            settings.jobs = settings.jobs.model_copy(update=overrides)
            target = Services(**{**services.__dict__, "settings": settings})
        return background(target, product_and_test_tasks(target))

    return make
