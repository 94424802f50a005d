"""Test-only tasks and settings for the jobs tests (never registered by the product).

The tasks record every run in ``test_job_runs`` and their effect, once per key, in
``test_job_effects`` (``ON CONFLICT DO NOTHING``): idempotent, as every real task must be,
so a test can tell "ran twice" (two runs) from "done twice" (two effects, impossible).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import psycopg

from auditline.config import JobsSettings, Settings, SqsSettings
from auditline.jobs.service import Handler, JobContext, Tasks
from auditline.services import Services
from tests.services.fixtures import Endpoint

TABLES = """
CREATE TABLE IF NOT EXISTS test_job_runs (
    n serial PRIMARY KEY, job_id uuid NOT NULL, key text, attempt int NOT NULL,
    pid int NOT NULL DEFAULT pg_backend_pid(), at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE IF NOT EXISTS test_job_effects (key text PRIMARY KEY, job_id uuid NOT NULL);
GRANT ALL ON test_job_runs, test_job_effects TO auditline_app;
GRANT USAGE ON SEQUENCE test_job_runs_n_seq TO auditline_app;
"""


def create_tables(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(TABLES)


def jobs_settings(backend: str, elasticmq: Endpoint | None, **overrides: Any) -> JobsSettings:
    """Fast settings: short visibility and retries, no scheduler unless asked."""
    values: dict[str, Any] = {
        "backend": backend,
        "visibility_timeout_seconds": 2,
        "max_receives": 3,
        "retry_base_seconds": 0.2,
        "retry_max_seconds": 1.0,
        "poll_seconds": 1.0,
        "shutdown_grace_seconds": 5.0,
        "scheduler": False,
        "concurrency": 4,
    }
    if backend == "sqs":
        assert elasticmq is not None
        name = f"t-{uuid.uuid4().hex[:12]}"
        values["sqs"] = SqsSettings(
            endpoint_url=elasticmq.url,
            region=elasticmq.region,
            access_key_id=elasticmq.access_key,
            secret_access_key=elasticmq.secret_key,  # type: ignore[arg-type]
            queue_name=name,
            dead_letter_queue_name=f"{name}-dlq",
            create_queues=True,
        )
    values.update(overrides)
    return JobsSettings(**values)


def with_jobs(settings: Settings, jobs: JobsSettings) -> Settings:
    settings = settings.model_copy(deep=True)
    settings.jobs = jobs
    settings.database.pool_max_size = 12
    return settings


def tasks_for_tests(services: Services) -> Tasks:
    """The test handlers, bound to *services* (the same shape as ``tasks.build_tasks``)."""
    pool = services.pool

    async def record(ctx: JobContext, payload: dict[str, Any]) -> bool:
        """One more run; the effect once per key. True if this run made the effect."""
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO test_job_runs (job_id, key, attempt) VALUES (%s, %s, %s)",
                (ctx.job_id, payload.get("key"), ctx.attempt),
            )
            cur = await conn.execute(
                "INSERT INTO test_job_effects (key, job_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (payload.get("key") or str(ctx.job_id), ctx.job_id),
            )
            return cur.rowcount == 1

    async def effect(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        made = await record(ctx, payload)
        await ctx.progress({"done": 1})
        return {"made": made, "tenant": ctx.tenant}

    async def flaky(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        """Fails its first ``fail`` attempts (recording each), then does its effect."""
        if ctx.attempt <= int(payload.get("fail", 1)):
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO test_job_runs (job_id, key, attempt) VALUES (%s, %s, %s)",
                    (ctx.job_id, "failed", ctx.attempt),
                )
            raise RuntimeError(f"flaky attempt {ctx.attempt}")
        return {"made": await record(ctx, payload)}

    async def poison(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO test_job_runs (job_id, key, attempt) VALUES (%s, %s, %s)",
                (ctx.job_id, "poison", ctx.attempt),
            )
        raise ValueError("poisoned payload cannot be processed")

    async def slow(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        """Records a run, waits ``seconds`` (or while ``hold_file`` exists), then its effect."""
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO test_job_runs (job_id, key, attempt) VALUES (%s, %s, %s)",
                (ctx.job_id, "started", ctx.attempt),
            )
        made = await record(ctx, payload) if payload.get("effect_first") else None
        hold = payload.get("hold_file")
        if hold:
            while os.path.exists(hold):  # noqa: ASYNC110, ASYNC240 - a file the test removes
                await asyncio.sleep(0.05)
        else:
            await asyncio.sleep(float(payload.get("seconds", 0)))
        return {"made": await record(ctx, payload) if made is None else made}

    async def noop(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        return {}

    handlers: dict[str, Handler] = {
        "test.effect": effect, "test.flaky": flaky, "test.poison": poison, "test.slow": slow,
        "test.noop": noop,
    }  # fmt: skip
    return Tasks(handlers=handlers)


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a worker process *settings* (database, data dir, jobs)."""
    env = {
        "AUDITLINE_DATA_DIR": str(settings.data_dir),
        "AUDITLINE_DATABASE__URL": str(settings.database.url),
    }
    for name, value in settings.jobs.model_dump(exclude={"sqs"}).items():
        env[f"AUDITLINE_JOBS__{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    sqs = settings.jobs.sqs
    for name, value in sqs.model_dump(exclude={"secret_access_key"}).items():
        if value is not None:
            env[f"AUDITLINE_JOBS__SQS__{name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
    if sqs.secret_access_key is not None:
        env["AUDITLINE_JOBS__SQS__SECRET_ACCESS_KEY"] = sqs.secret_access_key.get_secret_value()
    return env
