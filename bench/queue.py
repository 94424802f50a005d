"""Queue throughput: ``python -m bench.queue`` measures tasks/s through both queue backends.

For each backend (PostgreSQL, and SQS on a local ElasticMQ started like the tests' one) and
each worker concurrency (1 and 4 by default): submit ``--tasks`` no-op tasks
(``Jobs.submit``, each its own transaction: job row + queue or outbox row, from 8
concurrent submitters), then start one worker and time until every job has succeeded
(receive, mark running, run the no-op, record the result, delete; for SQS also the outbox
relay). Figures are tasks/s for submitting and for draining; ``bench/results/queue.json``
keeps them and ``python -m bench --report-only`` puts them in docs/BENCHMARKS.md.

The no-op handler is registered here only (never in the product). ElasticMQ is an
in-memory stand-in for SQS on the same machine: its figures show our overhead per task,
not Amazon SQS's (network round trips of 10-30 ms per receive, send and delete batch).
Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from tests.services.fixtures import elasticmq_service

from auditline.config import DatabaseSettings, JobsSettings, Settings, SqsSettings
from auditline.jobs.service import JobContext, Tasks
from auditline.services import Services, open_services
from auditline.storage.embedded import EmbeddedPostgres
from auditline.tasks import background
from bench import report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SUBMITTERS = 8


async def _noop(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {}


def bench_tasks(services: Services) -> Tasks:
    return Tasks(handlers={"bench.noop": _noop})


def _count(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


async def one_run(settings: Settings, url: str, tasks: int, concurrency: int) -> dict[str, Any]:
    settings = settings.model_copy(deep=True)
    settings.jobs.concurrency = concurrency
    settings.database.pool_max_size = max(SUBMITTERS, concurrency) + 6
    async with open_services(settings) as services:
        with psycopg.connect(url, autocommit=True) as conn:  # migrated now; start empty
            conn.execute("TRUNCATE jobs, job_queue, job_outbox")
        started = time.perf_counter()

        async def submitter(n: int) -> None:
            for _ in range(n):
                await services.jobs.submit("bench.noop", {}, tenant=None)

        share = [tasks // SUBMITTERS + (i < tasks % SUBMITTERS) for i in range(SUBMITTERS)]
        await asyncio.gather(*(submitter(n) for n in share))
        submit_s = time.perf_counter() - started
        started = time.perf_counter()
        async with background(services, bench_tasks(services)) as worker:
            # the worker's own count, not a query that would compete with it
            while worker.processed < tasks:  # noqa: ASYNC110 - a counter, not an event
                await asyncio.sleep(0.01)
            drain_s = time.perf_counter() - started
            processed = worker.processed
    done = _count(url, "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
    if done != tasks:
        raise RuntimeError(f"{done} of {tasks} jobs succeeded")
    return {
        "tasks": tasks,
        "concurrency": concurrency,
        "submit_s": round(submit_s, 3),
        "submit_per_s": round(tasks / submit_s, 1),
        "drain_s": round(drain_s, 3),
        "drain_per_s": round(tasks / drain_s, 1),
        "attempts": processed,
    }


async def run(
    work: Path, *, tasks: int, concurrencies: list[int], backends: list[str]
) -> dict[str, Any]:
    server = EmbeddedPostgres(work / "pg")
    server.start()
    mq = None
    try:
        url = server.url()
        base = Settings(
            data_dir=work / "data",
            database=DatabaseSettings(url=url, pool_min_size=1),
            jobs=JobsSettings(scheduler=False, poll_seconds=1.0),
        )
        result: dict[str, Any] = {"runs": []}
        for backend in backends:
            settings = base.model_copy(deep=True)
            settings.jobs.backend = backend  # type: ignore[assignment]
            if backend == "sqs":
                mq, endpoint = elasticmq_service(work)
                mq.start()
                settings.jobs.sqs = SqsSettings(
                    endpoint_url=endpoint.url, region=endpoint.region,
                    access_key_id=endpoint.access_key,
                    secret_access_key=endpoint.secret_key,  # type: ignore[arg-type]
                    queue_name="bench", dead_letter_queue_name="bench-dlq", create_queues=True,
                )  # fmt: skip
            for concurrency in concurrencies:
                figures = await one_run(settings, url, tasks, concurrency)
                figures["backend"] = backend
                print(json.dumps(figures), flush=True)
                result["runs"].append(figures)
        return result
    finally:
        if mq is not None:
            mq.stop()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000, help="no-op tasks per run")
    parser.add_argument("--concurrency", default="1,4", help="worker concurrencies")
    parser.add_argument("--backends", default="postgres,sqs", help="postgres, sqs")
    args = parser.parse_args()
    work = ROOT / "bench" / ".work-queue"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = asyncio.run(
        run(
            work,
            tasks=args.tasks,
            concurrencies=[int(c) for c in args.concurrency.split(",")],
            backends=args.backends.split(","),
        )
    )
    result["submitters"] = SUBMITTERS
    result["environment"] = report.environment()
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "queue.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'queue.json'}")


if __name__ == "__main__":
    main()
