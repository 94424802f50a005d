"""The scheduler: a due run is submitted once however many schedulers race for it, and the
schedule survives restarts (its next run is stored, not remembered)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg

from auditline.jobs.scheduler import Scheduler
from auditline.jobs.service import Schedule
from auditline.services import Services
from auditline.tasks import PARTITIONS_MAINTAIN, build_tasks
from tests.jobs.conftest import WorkerFactory
from tests.jobs.test_queue_contract import eventually, rows

EVERY_HOUR = Schedule(name="hourly", kind="test.noop", payload={"p": 1}, interval_seconds=3600)


def make_due(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE schedules SET next_run_at = now() - interval '1 second'")


async def test_racing_schedulers_submit_each_due_run_once(
    services: Services, database_url: str
) -> None:
    schedulers = [Scheduler(services.pool, services.jobs, [EVERY_HOUR]) for _ in range(4)]
    await asyncio.gather(*(s.declare() for s in schedulers))
    for round_ in range(1, 11):
        make_due(database_url)
        results = await asyncio.gather(*(s.tick() for s in schedulers))
        assert sum(len(r) for r in results) == 1, results
        assert rows(database_url, "SELECT count(*) FROM jobs") == [(round_,)]
    stored = rows(database_url, "SELECT DISTINCT kind, payload::text, tenant_id FROM jobs")
    assert stored == [("test.noop", '{"p": 1}', None)]


async def test_a_restarted_scheduler_keeps_the_stored_next_run(
    services: Services, database_url: str
) -> None:
    first = Scheduler(services.pool, services.jobs, [EVERY_HOUR])
    await first.declare()
    assert list(await first.tick()) == ["hourly"]  # a new schedule runs at once
    assert await first.tick() == {}
    restarted = Scheduler(services.pool, services.jobs, [EVERY_HOUR])
    await restarted.declare()
    assert await restarted.tick() == {}  # not due again: the run was remembered
    (job_id,) = rows(database_url, "SELECT last_job_id FROM schedules WHERE name = 'hourly'")[0]
    assert rows(database_url, "SELECT id FROM jobs") == [(job_id,)]
    # A shorter interval declared later brings the next run forward.
    shorter = Schedule(name="hourly", kind="test.noop", payload={}, interval_seconds=0.1)
    quick = Scheduler(services.pool, services.jobs, [shorter])
    await quick.declare()
    assert await eventually(quick.tick, within=10)


async def test_partition_upkeep_runs_on_the_scheduler(
    services: Services, worker: WorkerFactory, database_url: str
) -> None:
    names = [s.name for s in build_tasks(services).schedules]
    assert "partitions" in names
    async with worker(scheduler=True):
        assert await eventually(
            lambda: _succeeded(database_url, PARTITIONS_MAINTAIN), within=30
        )  # fmt: skip
    (result,) = rows(database_url, "SELECT result FROM jobs WHERE kind = %s", PARTITIONS_MAINTAIN)
    assert result == ({"months_ahead": services.settings.database.partition_months_ahead},)
    due = rows(database_url, "SELECT next_run_at - last_run_at FROM schedules WHERE name = %s",
               "partitions")  # fmt: skip
    assert due == [(timedelta(seconds=services.settings.maintenance_interval_seconds),)]


async def _succeeded(database_url: str, kind: str) -> bool:
    return bool(rows(database_url, "SELECT 1 FROM jobs WHERE kind = %s AND status = 'succeeded'",
                     kind))  # fmt: skip
