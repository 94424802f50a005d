"""Several API processes add up: prometheus-client's multiprocess mode, as serve sets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditline.metrics import MULTIPROC_ENV, multiprocess_dir, prepare_multiprocess_dir

WORKER = """
from auditline.metrics import Metrics
m = Metrics()
m.events_ingested.labels("_other").inc({count})
m.pool_in_use.labels("write").set({in_use})
if {stop}:
    m.process_stopped()
"""
SCRAPE = "from auditline.metrics import Metrics; print(Metrics().render()[0].decode())"


def _run(code: str, directory: Path) -> str:
    env = {**os.environ, MULTIPROC_ENV: str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_counters_of_every_process_add_up_and_a_stopped_process_leaves_its_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "")  # restored after the test: serve's setting is global
    directory = multiprocess_dir(tmp_path)
    directory.mkdir()
    (directory / "counter_99999.db").write_bytes(b"stale")  # a previous run's file
    assert prepare_multiprocess_dir(tmp_path) == directory
    assert os.environ[MULTIPROC_ENV] == str(directory.resolve())
    assert list(directory.iterdir()) == []  # emptied at start

    _run(WORKER.format(count=3, in_use=2, stop=False), directory)  # still "live"
    _run(WORKER.format(count=4, in_use=5, stop=True), directory)  # stopped cleanly
    text = _run(SCRAPE, directory)
    assert 'auditline_events_ingested_total{tenant="_other"} 7.0' in text
    assert 'auditline_db_pool_in_use{pool="write"} 2.0' in text
