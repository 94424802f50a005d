"""Real worker processes: one is SIGKILLed in the middle of a task, another takes over.

The killed task had already made its effect (recorded under a unique key) and was about to
finish; after the visibility timeout its message is delivered again, the task runs again,
its effect is not made a second time, and every other task submitted meanwhile is done.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from auditline.config import Settings
from auditline.services import Services
from auditline.tenancy.scope import for_system
from tests.jobs.support import worker_env
from tests.jobs.test_queue_contract import eventually, job, rows

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def start_worker(settings: Settings, log: Path, *command: str) -> subprocess.Popen[bytes]:
    """``python -m tests.jobs.worker_main`` (concurrency 1), or ``python -m *command``."""
    env = {**os.environ, **worker_env(settings), "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    if not command:
        env["AUDITLINE_JOBS__CONCURRENCY"] = "1"
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *(command or ["tests.jobs.worker_main"])],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def test_a_task_whose_worker_was_killed_is_retried_and_done_once(
    services: Services, job_settings: Settings, database_url: str, tmp_path: Path
) -> None:
    with __import__("psycopg").connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
    acme = for_system("acme", reason="test tenant")
    hold = tmp_path / "hold"
    hold.touch()
    log = tmp_path / "workers.log"
    crashed = await services.jobs.submit(
        "test.slow", {"key": "crash", "effect_first": True, "hold_file": str(hold)}, tenant=acme
    )
    first = start_worker(job_settings, log)
    try:
        # the task made its effect and hangs before finishing; more work arrives meanwhile
        started = await eventually(lambda: _has(database_url, "SELECT 1 FROM test_job_effects"))
        assert started, log.read_text()
        later = [
            await services.jobs.submit("test.effect", {"key": f"later-{i}"}, tenant=acme)
            for i in range(3)
        ]
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    assert job(database_url, crashed)["status"] == "running"  # what the dead worker left
    hold.unlink()
    second = start_worker(job_settings, log)
    try:
        done = await eventually(
            lambda: _has(database_url, "SELECT 1 FROM jobs HAVING bool_and(status = 'succeeded')"
                         " AND count(*) = 4"),
            within=60,
        )  # fmt: skip
        assert done, log.read_text()
        second.send_signal(signal.SIGTERM)  # graceful stop
        assert second.wait(timeout=30) == 0, log.read_text()
    finally:
        if second.poll() is None:
            second.kill()
    runs = rows(database_url, "SELECT job_id, key, attempt FROM test_job_runs ORDER BY n")
    assert [(k, a) for j, k, a in runs if j == crashed] == [
        ("started", 1), ("crash", 1), ("started", 2), ("crash", 2),
    ]  # fmt: skip
    effects = rows(database_url, "SELECT key, job_id FROM test_job_effects ORDER BY key")
    assert effects == [("crash", crashed)] + [(f"later-{i}", later[i]) for i in range(3)]
    row = job(database_url, crashed)
    assert (row["status"], row["attempts"], row["result"]) == ("succeeded", 2, {"made": False})
    assert await services.jobs.queue.depth() == 0


async def _has(database_url: str, query: str) -> bool:
    return bool(rows(database_url, query))


async def test_the_auditline_worker_command_runs_the_schedules_and_stops_on_sigterm(
    services: Services, job_settings: Settings, database_url: str, tmp_path: Path
) -> None:
    job_settings = job_settings.model_copy(deep=True)
    job_settings.jobs.scheduler = True
    log = tmp_path / "worker.log"
    worker = start_worker(job_settings, log, "auditline", "worker", "--concurrency", "2")
    try:
        done = await eventually(
            lambda: _has(database_url, "SELECT 1 FROM jobs WHERE kind = 'partitions.maintain'"
                         " AND status = 'succeeded'"),
            within=60,
        )  # fmt: skip
        assert done, log.read_text()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert "worker ready" in log.read_text()
