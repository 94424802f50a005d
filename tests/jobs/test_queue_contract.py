"""One contract for both queue backends (PostgreSQL, and SQS on a real ElasticMQ): SQS
semantics end to end, through ``Jobs.submit``, the queue and the worker.

Waits poll the database until a condition holds or a generous deadline passes; nothing
asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

from auditline.jobs.queue import Batch, Message
from auditline.jobs.sqs import SqsQueue
from auditline.services import Services
from auditline.tenancy.scope import for_system
from tests.jobs.conftest import WorkerFactory

ACME = for_system("acme", reason="test tenant")


async def eventually(check: Callable[[], Awaitable[Any]], *, within: float = 30.0) -> Any:
    """The first truthy result of *check*, polled until *within* seconds pass."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


async def relay(services: Services) -> None:
    """Move committed outbox rows to SQS (what a worker's relay does in the background)."""
    if isinstance(services.jobs.queue, SqsQueue):
        await services.jobs.queue.relay_once()


async def receive_one(services: Services, wait: float = 1.0) -> Message | None:
    batch: Batch = await services.jobs.queue.receive(1, wait)
    return batch.messages[0] if batch.messages else None


def rows(database_url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, args).fetchall()  # type: ignore[arg-type]


def job(database_url: str, job_id: uuid.UUID) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        conn.row_factory = psycopg.rows.dict_row  # type: ignore[assignment]
        found = conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert found is not None
    return dict(found)  # type: ignore[arg-type]


@pytest.fixture
async def acme(services: Services, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")


# ---------------------------------------------------------------------------------------
# The queue itself


@pytest.mark.usefixtures("acme")
async def test_a_sent_task_is_received_once_and_gone_when_deleted(services: Services) -> None:
    job_id = await services.jobs.submit("test.effect", {"key": "k1"}, tenant=ACME)
    await relay(services)
    got = await receive_one(services)
    assert got is not None
    assert (got.job_id, got.kind, got.tenant, got.payload, got.receive_count) == (
        job_id, "test.effect", "acme", {"key": "k1"}, 1,
    )  # fmt: skip
    assert await receive_one(services, wait=0) is None  # hidden while received
    await services.jobs.queue.delete(got, None)
    await asyncio.sleep(services.settings.jobs.visibility_timeout_seconds + 0.5)
    assert await receive_one(services) is None  # deleted: never delivered again


@pytest.mark.usefixtures("acme")
async def test_a_task_not_deleted_is_delivered_again_after_its_visibility_timeout(
    services: Services,
) -> None:
    job_id = await services.jobs.submit("test.effect", {}, tenant=ACME)
    await relay(services)
    first = await receive_one(services)
    assert first is not None
    assert await receive_one(services, wait=0) is None
    again = await eventually(lambda: receive_one(services), within=15)
    assert again is not None
    assert (again.job_id, again.receive_count) == (job_id, 2)
    # the first receiver's receipt is stale now: its delete does not remove the redelivery
    if not isinstance(services.jobs.queue, SqsQueue):  # SQS accepts an old receipt handle
        await services.jobs.queue.delete(first, None)
        await services.jobs.queue.retry_later(again, 0, None)
        assert (await eventually(lambda: receive_one(services))).job_id == job_id


@pytest.mark.usefixtures("acme")
async def test_retry_later_hides_the_task_for_the_backoff(services: Services) -> None:
    await services.jobs.submit("test.effect", {}, tenant=ACME)
    await relay(services)
    got = await receive_one(services)
    assert got is not None
    await services.jobs.queue.retry_later(got, 3, None)
    assert await receive_one(services, wait=1) is None  # still backing off
    later = await eventually(lambda: receive_one(services), within=15)
    assert later is not None
    assert later.job_id == got.job_id


async def test_a_platform_job_has_no_tenant(services: Services, database_url: str) -> None:
    job_id = await services.jobs.submit("test.effect", {}, tenant=None)
    await relay(services)
    got = await receive_one(services)
    assert got is not None
    assert (got.job_id, got.tenant) == (job_id, None)
    assert job(database_url, job_id)["tenant_id"] is None


# ---------------------------------------------------------------------------------------
# Submitting in the caller's transaction


@pytest.mark.usefixtures("acme")
async def test_a_job_submitted_in_a_rolled_back_transaction_does_not_exist(
    services: Services, database_url: str
) -> None:
    class Abort(Exception):
        pass

    async def write_and_submit_then_fail() -> None:
        async with services.pool.connection() as conn, conn.transaction():
            await conn.execute("INSERT INTO test_job_effects (key, job_id) VALUES ('w', %s)",
                               (uuid.uuid4(),))  # fmt: skip
            await services.jobs.submit("test.effect", {"key": "rolled"}, tenant=ACME, conn=conn)
            raise Abort

    with pytest.raises(Abort):
        await write_and_submit_then_fail()
    await relay(services)
    assert rows(database_url, "SELECT * FROM jobs") == []
    assert rows(database_url, "SELECT * FROM test_job_effects") == []
    assert rows(database_url, "SELECT * FROM job_queue") == []
    assert rows(database_url, "SELECT * FROM job_outbox") == []
    assert await receive_one(services) is None


@pytest.mark.usefixtures("acme")
async def test_a_job_submitted_with_a_write_commits_with_it_and_keeps_the_callers_tenant(
    services: Services, database_url: str
) -> None:
    async with services.pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT set_config('auditline.tenant_id', 'acme', true)")
        platform_job = await services.jobs.submit("test.effect", {}, tenant=None, conn=conn)
        cur = await conn.execute("SELECT current_setting('auditline.tenant_id') AS t")
        assert await cur.fetchone() == {"t": "acme"}  # the caller's binding is back
        acme_job = await services.jobs.submit("test.effect", {}, tenant=ACME, conn=conn)
    assert {r[0] for r in rows(database_url, "SELECT id FROM jobs")} == {platform_job, acme_job}
    await relay(services)
    seen = set()
    for _ in range(2):
        got = await eventually(lambda: receive_one(services))
        seen.add(got.job_id)
    assert seen == {platform_job, acme_job}


# ---------------------------------------------------------------------------------------
# Through the worker


@pytest.mark.usefixtures("acme")
async def test_the_worker_runs_a_task_and_records_its_result(
    services: Services, worker: WorkerFactory, database_url: str
) -> None:
    async with worker():
        job_id = await services.jobs.submit("test.effect", {"key": "once"}, tenant=ACME)
        done = await eventually(lambda: _status(database_url, job_id, "succeeded"))
    assert done
    row = job(database_url, job_id)
    assert (row["status"], row["attempts"], row["result"], row["progress"], row["error"]) == (
        "succeeded", 1, {"made": True, "tenant": "acme"}, {"done": 1}, None,
    )  # fmt: skip
    assert row["started_at"] <= row["finished_at"]
    assert rows(database_url, "SELECT key FROM test_job_effects") == [("once",)]
    assert await receive_one(services) is None  # deleted


@pytest.mark.usefixtures("acme")
async def test_a_failed_attempt_is_retried_with_backoff_then_succeeds(
    services: Services, worker: WorkerFactory, database_url: str
) -> None:
    async with worker():
        job_id = await services.jobs.submit("test.flaky", {"key": "f", "fail": 1}, tenant=ACME)
        assert await eventually(lambda: _status(database_url, job_id, "succeeded"))
    row = job(database_url, job_id)
    assert (row["attempts"], row["error"]) == (2, None)
    runs = rows(database_url, "SELECT key, attempt, at FROM test_job_runs ORDER BY n")
    assert [(k, a) for k, a, _ in runs] == [("failed", 1), ("f", 2)]
    assert rows(database_url, "SELECT key FROM test_job_effects") == [("f",)]


@pytest.mark.usefixtures("acme")
async def test_a_poisoned_task_ends_in_the_dead_letter_queue_and_its_job_failed(
    services: Services, worker: WorkerFactory, database_url: str
) -> None:
    max_receives = services.settings.jobs.max_receives
    async with worker():
        job_id = await services.jobs.submit("test.poison", {}, tenant=ACME)
        assert await eventually(lambda: _status(database_url, job_id, "failed"))
        # SQS moves it on the receive after the last attempt: the worker keeps receiving
        dead = await eventually(lambda: services.jobs.queue.dead_letters(), within=30)
    assert [m.job_id for m in dead] == [job_id]
    row = job(database_url, job_id)
    assert row["attempts"] == max_receives
    assert row["error"] == "ValueError: poisoned payload cannot be processed"
    attempts = rows(database_url, "SELECT attempt FROM test_job_runs ORDER BY n")
    assert [a for (a,) in attempts] == list(range(1, max_receives + 1))
    assert await receive_one(services) is None  # not on the main queue any more


# A visibility timeout far above a task's half second. With the suite's 2 s this failed
# once on SQS on an overloaded machine (a CI run beside a benchmark; never alone): the
# likeliest cause is a stalled heartbeat letting messages reappear until their receives
# ran out (dead-lettered, never succeeded). Redelivery is the next test's subject.
@pytest.mark.parametrize("job_settings", [{"visibility_timeout_seconds": 15}], indirect=True)
@pytest.mark.usefixtures("acme")
async def test_two_workers_share_the_queue_and_run_each_task_once(
    services: Services, worker: WorkerFactory, database_url: str
) -> None:
    # 12 tasks of half a second for two workers of 4 slots each: while the first is full,
    # the rest can only go to the second.
    async with worker() as one, worker() as two:
        ids = [
            await services.jobs.submit("test.slow", {"key": f"k{i}", "seconds": 0.5}, tenant=ACME)
            for i in range(12)
        ]
        assert await eventually(lambda: _all_succeeded(database_url, 12), within=60)
    assert (one.processed > 0, two.processed > 0) == (True, True)
    assert one.processed + two.processed == 12
    runs = rows(database_url, "SELECT job_id FROM test_job_runs WHERE key = 'started'")
    assert sorted(r[0] for r in runs) == sorted(ids)  # each ran once
    assert len(rows(database_url, "SELECT 1 FROM test_job_effects")) == 12


@pytest.mark.parametrize("job_settings", [{"visibility_timeout_seconds": 1}], indirect=True)
@pytest.mark.usefixtures("acme")
async def test_a_task_longer_than_the_visibility_timeout_runs_once(
    services: Services, worker: WorkerFactory, database_url: str
) -> None:
    # Two workers; the heartbeat keeps the message hidden while the first one works.
    async with worker(), worker():
        job_id = await services.jobs.submit("test.slow", {"key": "s", "seconds": 4}, tenant=ACME)
        assert await eventually(lambda: _status(database_url, job_id, "succeeded"))
    assert rows(database_url, "SELECT key, attempt FROM test_job_runs ORDER BY n") == [
        ("started", 1), ("s", 1),
    ]  # fmt: skip


@pytest.mark.usefixtures("acme")
async def test_a_stopping_worker_releases_unfinished_tasks_to_the_next(
    services: Services, worker: WorkerFactory, database_url: str, tmp_path: Any
) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    async with worker(shutdown_grace_seconds=0.2):
        job_id = await services.jobs.submit(
            "test.slow", {"key": "r", "hold_file": str(hold)}, tenant=ACME
        )
        assert await eventually(lambda: _runs(database_url, 1))
    row = job(database_url, job_id)
    assert (row["status"], row["error"]) == ("queued", "interrupted by shutdown")
    hold.unlink()
    async with worker():
        assert await eventually(lambda: _status(database_url, job_id, "succeeded"), within=10)
    assert rows(database_url, "SELECT key FROM test_job_effects") == [("r",)]


async def test_a_task_of_an_unknown_kind_fails_its_job(
    services: Services, worker: WorkerFactory, database_url: str
) -> None:
    async with worker(max_receives=1):
        job_id = await services.jobs.submit("test.nobody-handles-this", {}, tenant=None)
        assert await eventually(lambda: _status(database_url, job_id, "failed"))
    assert "no handler for task kind" in job(database_url, job_id)["error"]


# ---------------------------------------------------------------------------------------
# The SQS outbox


@pytest.mark.parametrize("backend", ["sqs"], indirect=True)
@pytest.mark.usefixtures("acme")
async def test_the_outbox_keeps_a_committed_job_until_it_is_relayed(
    services: Services, database_url: str
) -> None:
    # Committed, not yet sent: as after a crash between commit and send.
    job_id = await services.jobs.submit("test.effect", {}, tenant=ACME)
    assert [r[0] for r in rows(database_url, "SELECT job_id FROM job_outbox")] == [job_id]
    assert await receive_one(services) is None
    assert isinstance(services.jobs.queue, SqsQueue)
    assert await services.jobs.queue.relay_once() == 1
    assert rows(database_url, "SELECT * FROM job_outbox") == []
    got = await receive_one(services)
    assert got is not None
    assert got.job_id == job_id


@pytest.mark.parametrize("backend", ["sqs"], indirect=True)
@pytest.mark.usefixtures("acme")
async def test_a_duplicate_delivery_of_a_finished_job_is_dropped(
    services: Services, worker: WorkerFactory, database_url: str
) -> None:
    """A crash between the send and the outbox delete sends twice: the job runs once."""
    job_id = await services.jobs.submit("test.effect", {"key": "dup"}, tenant=ACME)
    with psycopg.connect(database_url) as conn:
        body = conn.execute("SELECT job_id, body FROM job_outbox").fetchone()
        assert body is not None
        conn.execute("INSERT INTO job_outbox (job_id, body) VALUES (%s, %s)",
                     (body[0], psycopg.types.json.Jsonb(body[1])))  # fmt: skip
    async with worker():
        assert await eventually(lambda: _status(database_url, job_id, "succeeded"))
        assert await eventually(lambda: _outbox_empty(database_url))
        # the duplicate is received, deferred while the first delivery holds the job, then
        # received again and dropped
        assert await eventually(lambda: _drained(services))
    assert rows(database_url, "SELECT key, attempt FROM test_job_runs") == [("dup", 1)]
    assert await receive_one(services) is None


async def _status(database_url: str, job_id: uuid.UUID, status: str) -> bool:
    return bool(rows(database_url, "SELECT 1 FROM jobs WHERE id = %s AND status = %s",
                     job_id, status))  # fmt: skip


async def _all_succeeded(database_url: str, n: int) -> bool:
    return rows(database_url, "SELECT count(*) FROM jobs WHERE status = 'succeeded'") == [(n,)]


async def _runs(database_url: str, n: int) -> bool:
    return len(rows(database_url, "SELECT 1 FROM test_job_runs")) >= n


async def _drained(services: Services) -> bool:
    return await services.jobs.queue.depth() == 0


async def _outbox_empty(database_url: str) -> bool:
    return not rows(database_url, "SELECT 1 FROM job_outbox")
