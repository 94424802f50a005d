"""Crash tests: an acknowledged event survives, and no event is ever stored twice.

Clients write events with their own unique ids while the server or its database is
killed. Each client records what it saw for each id, as Jepsen's set checker does:

* ``ok``: a 2xx answer; the event must be stored, exactly once;
* ``failed``: a 4xx answer; the event must not be stored;
* ``unknown``: no answer, or a 5xx; it may or may not be stored, but never twice.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from auditline.storage.embedded import EmbeddedPostgres
from tests.e2e.test_serve_process import Server, free_port, run_cli

pytestmark = pytest.mark.slow


@dataclass
class History:
    ok: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: str, event_id: str) -> None:
        with self.lock:
            getattr(self, outcome).add(event_id)


class Writers:
    """Client threads posting events with fresh ids until stopped."""

    def __init__(self, base: str, token: str, history: History, threads: int = 4) -> None:
        self.base, self.token, self.history = base, token, history
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=5) as http:
            while not self.stop_flag.is_set():
                event_id = str(uuid.uuid4())
                try:
                    response = http.post("/api/v1/logs", json={"id": event_id, "action": "CREATE"})
                except httpx.TransportError:
                    self.history.add("unknown", event_id)
                    time.sleep(0.05)
                    continue
                if response.status_code < 300:
                    self.history.add("ok", event_id)
                elif response.status_code < 500:
                    self.history.add("failed", event_id)
                else:
                    self.history.add("unknown", event_id)
                    time.sleep(0.05)

    def wait_for_acks(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.history.ok) < n:
            assert time.monotonic() < deadline, "writes are not being acknowledged"
            time.sleep(0.05)


def stored_counts(data_dir: Path, ids: set[str]) -> dict[str, int]:
    with psycopg.connect(EmbeddedPostgres(data_dir).url()) as conn:
        rows = conn.execute(
            "SELECT id::text, count(*) FROM events WHERE id = ANY(%s::uuid[]) GROUP BY id",
            (list(ids),),
        ).fetchall()
    return {r[0]: r[1] for r in rows}


def check(history: History, data_dir: Path) -> None:
    counts = stored_counts(data_dir, history.ok | history.failed | history.unknown)
    lost = [i for i in history.ok if counts.get(i, 0) != 1]
    assert not lost, f"{len(lost)} acknowledged events not stored exactly once"
    assert not [i for i in history.failed if i in counts], "a rejected event was stored"
    assert all(n == 1 for n in counts.values()), "an event was stored twice"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    srv = Server(tmp_path / "data", free_port())
    srv.start()
    admin = {
        "Authorization": f"Bearer {(srv.data_dir / 'bootstrap-admin.jwt').read_text().strip()}"
    }
    created = httpx.post(
        srv.base + "/api/v1/tenants", json={"id": "acme", "name": "A"}, headers=admin
    )
    assert created.status_code == 201
    token = run_cli("token", "--tenant", "acme", "--role", "user", data_dir=srv.data_dir)
    yield srv, token.stdout.strip()
    if srv.proc is not None and srv.proc.poll() is None:
        srv.stop()
    EmbeddedPostgres(srv.data_dir).stop(force=True, mode="immediate")


def test_sigkill_of_server_and_database_loses_no_acknowledged_event(
    server: tuple[Server, str],
) -> None:
    srv, token = server
    history = History()
    with Writers(srv.base, token, history) as writers:
        writers.wait_for_acks(150)
        srv.stop(signal.SIGKILL)  # the service dies mid-stream...
        EmbeddedPostgres(srv.data_dir).stop(force=True, mode="immediate")  # ...and its database
        time.sleep(0.3)
    assert history.unknown, "the crash happened while requests were in flight"
    srv.start()  # recovery: WAL replay, then the service again
    with Writers(srv.base, token, history) as writers:
        writers.wait_for_acks(len(history.ok) + 50)
    check(history, srv.data_dir)


def test_database_crash_and_restart_under_a_running_server(server: tuple[Server, str]) -> None:
    srv, token = server
    history = History()
    with Writers(srv.base, token, history) as writers:
        writers.wait_for_acks(150)
        acked_before = len(history.ok)
        EmbeddedPostgres(srv.data_dir).stop(force=True, mode="immediate")
        time.sleep(1.0)
        assert len(history.ok) - acked_before < 20  # nothing is acknowledged without a database
        EmbeddedPostgres(srv.data_dir).start()
        writers.wait_for_acks(len(history.ok) + 100)  # the service recovers by itself
    check(history, srv.data_dir)
