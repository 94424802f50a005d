"""Pruning: finished jobs and dead letters go after ``jobs.keep_finished_days``; work that
is queued or running stays whatever its age, and every tenant (and the platform) is
pruned under its own row-level security."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from auditline.services import Services
from auditline.tasks import JOBS_PRUNE, build_tasks
from tests.jobs.test_queue_contract import rows

pytestmark = pytest.mark.parametrize("backend", ["postgres"])  # dead letters in the table

OLD, RECENT = 40, 1  # days ago; the bound is 30


def seed(database_url: str) -> dict[str, uuid.UUID]:
    """Jobs of acme, globex and the platform, and queue rows, of every age and status;
    their ids by name (``<tenant>-<status>-<age>``)."""
    now = datetime.now(UTC)
    jobs = {
        "acme-succeeded-old-1": ("acme", "succeeded", OLD),
        "acme-succeeded-old-2": ("acme", "succeeded", OLD + 1),
        "acme-failed-old": ("acme", "failed", OLD),
        "acme-running-old": ("acme", "running", OLD),
        "acme-queued-old": ("acme", "queued", OLD),
        "acme-succeeded-recent": ("acme", "succeeded", RECENT),
        "globex-succeeded-old": ("globex", "succeeded", OLD),
        "platform-failed-old": (None, "failed", OLD),
        "platform-succeeded-recent": (None, "succeeded", RECENT),
    }
    ids = {name: uuid.uuid4() for name in jobs}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for tenant in ("acme", "globex"):
            conn.execute("INSERT INTO tenants (id, name) VALUES (%s, %s)", (tenant, tenant))
        for name, (tenant, status, age) in jobs.items():
            at = now - timedelta(days=age)
            finished = at if status in ("succeeded", "failed") else None
            conn.execute(
                """INSERT INTO jobs (id, tenant_id, kind, status, created_at, started_at,
                                     finished_at) VALUES (%s, %s, 'test.noop', %s, %s, %s, %s)""",
                (ids[name], tenant, status, at, at, finished),
            )
        for name, dead in (("dead-old", OLD), ("dead-recent", RECENT), ("live", None)):
            ids[name] = uuid.uuid4()
            conn.execute(
                """INSERT INTO job_queue (job_id, kind, payload, dead_at)
                   VALUES (%s, 'test.noop', '{}', %s)""",
                (ids[name], None if dead is None else now - timedelta(days=dead)),
            )
    return ids


def remaining(database_url: str, ids: dict[str, uuid.UUID]) -> set[str]:
    by_id = {v: k for k, v in ids.items()}
    kept = rows(database_url, "SELECT id FROM jobs UNION ALL SELECT job_id FROM job_queue")
    return {by_id[job_id] for (job_id,) in kept}


async def test_only_what_finished_before_the_bound_is_pruned_in_every_tenant(
    services: Services, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await asyncio.to_thread(seed, database_url)
    # Batches of two: acme's three old finished jobs take two rounds, as would thousands.
    monkeypatch.setattr("auditline.jobs.service.PRUNE_BATCH", 2)
    monkeypatch.setattr("auditline.jobs.postgres.PRUNE_BATCH", 2)

    pruned = await services.jobs.prune(datetime.now(UTC) - timedelta(days=30))

    assert pruned == {"jobs": 5, "dead_letters": 1}
    assert await asyncio.to_thread(remaining, database_url, ids) == {
        "acme-running-old",
        "acme-queued-old",
        "acme-succeeded-recent",
        "platform-succeeded-recent",
        "dead-recent",
        "live",
    }


async def test_the_daily_task_prunes_by_the_configured_days(
    services: Services, database_url: str
) -> None:
    ids = await asyncio.to_thread(seed, database_url)
    services.settings.jobs.keep_finished_days = 60  # nothing seeded is that old
    tasks = build_tasks(services)
    assert ("jobs-prune", JOBS_PRUNE, 86_400.0) in {
        (s.name, s.kind, s.interval_seconds) for s in tasks.schedules
    }
    handler = tasks.handlers[JOBS_PRUNE]

    result: Any = await handler(None, {})  # type: ignore[arg-type]  # the handler ignores its context
    assert result == {"jobs": 0, "dead_letters": 0}

    services.settings.jobs.keep_finished_days = 30
    result = await handler(None, {})  # type: ignore[arg-type]
    assert result == {"jobs": 5, "dead_letters": 1}
    assert "acme-succeeded-old-1" not in await asyncio.to_thread(remaining, database_url, ids)
