"""Streams across real ``auditline serve`` processes on one database.

Two servers (each with its own port and data dir, the second pointed at the first's
PostgreSQL and signing key) stand for two API processes behind a load balancer: an event
committed through one reaches a subscriber connected to the other, and a subscriber that
resumes after a server restart misses nothing and receives nothing twice.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from auditline.storage.embedded import EmbeddedPostgres
from tests.e2e.test_serve_process import CLI, Server, free_port, run_cli

pytestmark = pytest.mark.slow


class EnvServer(Server):
    """A server started with extra ``AUDITLINE_*`` variables (the base class clears them)."""

    def __init__(self, data_dir: Path, port: int, env: dict[str, str]) -> None:
        super().__init__(data_dir, port)
        self.env = env

    def start(self, *extra: str) -> None:
        self._close_log()
        log = open(self.data_dir.parent / f"serve-{self.port}.log", "a")  # noqa: SIM115
        self._logfile = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITLINE_")}
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port), *extra],
            stdout=log, stderr=subprocess.STDOUT, text=True, env={**env, **self.env},
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._close_log()  # else its open log is reported in whichever test is next
                raise AssertionError(f"server exited early:\n{self.log_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self._close_log()
        raise AssertionError("server did not become ready")

    def log_text(self) -> str:
        return (self.data_dir.parent / f"serve-{self.port}.log").read_text()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    first = Server(tmp_path / "one", free_port())
    first.start()
    url = EmbeddedPostgres(first.data_dir).url()
    key = str(first.data_dir / "signing-key.pem")
    (tmp_path / "two").mkdir()
    second = EnvServer(
        tmp_path / "two", free_port(),
        {"AUDITLINE_DATABASE__URL": url, "AUDITLINE_AUTH__SIGNING_KEY_FILE": key},
    )  # fmt: skip
    second.start()
    yield first, second
    for srv in (second, first):
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()


def _token(server: Server, role: str) -> str:
    minted = run_cli("token", "--tenant", "acme", "--role", role, "--sub", f"{role}-e2e",
                     data_dir=server.data_dir)  # fmt: skip
    assert minted.returncode == 0, minted.stderr
    return minted.stdout.strip()


def _ws(server: Server, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"ws://127.0.0.1:{server.port}/api/v1/logs/stream?{query}"


async def _until_ready(ws: Any) -> list[dict[str, Any]]:
    replayed = []
    while True:
        message = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
        if message["type"] == "ready":
            return replayed
        replayed.append(message)


async def _events(ws: Any, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < n:
        message = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
        if message["type"] == "event":
            out.append(message)
    return out


def _post(server: Server, token: str, n: int) -> list[str]:
    response = httpx.post(
        server.base + "/api/v1/logs/bulk",
        json={"events": [{"action": "UPDATE", "message": f"e{i}"} for i in range(n)]},
        headers={"Authorization": f"Bearer {token}"}, timeout=30,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    ids: list[str] = response.json()["ids"]
    return ids


def test_events_reach_subscribers_on_the_other_process_and_survive_a_restart(
    servers: tuple[Server, Server],
) -> None:
    one, two = servers
    admin = (one.data_dir / "bootstrap-admin.jwt").read_text().strip()
    created = httpx.post(one.base + "/api/v1/tenants", json={"id": "acme", "name": "Acme"},
                         headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
    assert created.status_code == 201, created.text
    writer, auditor = _token(one, "admin"), _token(one, "auditor")

    async def scenario() -> None:
        headers = {"Authorization": f"Bearer {auditor}"}
        async with connect(_ws(one), additional_headers=headers) as on_one, \
                connect(_ws(two), additional_headers=headers) as on_two:  # fmt: skip
            await _until_ready(on_one)
            await _until_ready(on_two)
            via_one = await asyncio.to_thread(_post, one, writer, 5)
            via_two = await asyncio.to_thread(_post, two, writer, 5)
            for ws in (on_one, on_two):
                got = [m["data"]["id"] for m in await _events(ws, 10)]
                assert got == via_one + via_two  # both processes' commits, in seq order

    asyncio.run(scenario())

    # Resume across a restart of the server the subscriber was connected to.
    async def resume() -> None:
        headers = {"Authorization": f"Bearer {auditor}"}
        async with connect(_ws(two), additional_headers=headers) as ws:
            await _until_ready(ws)
            [first] = await asyncio.to_thread(_post, one, writer, 1)
            [message] = await _events(ws, 1)
            assert message["data"]["id"] == first
            cursor = message["cursor"]
        two.stop()
        missed = await asyncio.to_thread(_post, one, writer, 7)  # while two is down
        await asyncio.to_thread(two.start)
        async with connect(_ws(two, since=cursor), additional_headers=headers) as ws:
            replayed = await _until_ready(ws)
            more = await asyncio.to_thread(_post, one, writer, 3)
            live = await _events(ws, 3)
        ids = [m["data"]["id"] for m in replayed + live]
        assert ids == missed + more
        assert len(set(ids)) == len(ids)

    asyncio.run(resume())


def test_tail_follows_and_resumes_by_itself_across_a_restart(
    servers: tuple[Server, Server],
) -> None:
    one, two = servers
    admin = (one.data_dir / "bootstrap-admin.jwt").read_text().strip()
    created = httpx.post(one.base + "/api/v1/tenants", json={"id": "acme", "name": "Acme"},
                         headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
    assert created.status_code == 201, created.text
    writer = _token(one, "admin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITLINE_")}
    tail = subprocess.Popen(
        [*CLI, "tail", "--tenant", "acme", "--data-dir", str(one.data_dir), "--url", two.base,
         "--json", "--count", "12", "--min-severity", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert tail.stdout is not None
        # tail prints nothing before its first event: wait until its stream is open (the
        # opening is recorded in acme's log) before writing.
        auditor = _token(one, "auditor")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = httpx.get(
                one.base + "/api/v1/logs",
                params={"resource_type": "audit_log"},
                headers={"Authorization": f"Bearer {auditor}"},
            ).json()["items"]
            if any(e["message"] == "opened a stream of audit events" for e in found):
                break
            time.sleep(0.2)
        first = _post_severity(one, writer, 4, "WARNING") + _post_severity(one, writer, 3, "INFO")
        lines = [orjson.loads(tail.stdout.readline()) for _ in range(4)]
        two.stop()
        missed = _post_severity(one, writer, 5, "ERROR")  # while tail cannot connect
        two.start()
        more = _post_severity(one, writer, 3, "CRITICAL")
        lines += [orjson.loads(tail.stdout.readline()) for _ in range(8)]
        assert tail.wait(timeout=30) == 0
    finally:
        if tail.poll() is None:
            tail.kill()
        _, stderr = tail.communicate(timeout=10)
    assert [e["id"] for e in lines] == first[:4] + missed + more
    assert "resuming after cursor" in stderr


def _post_severity(server: Server, token: str, n: int, severity: str) -> list[str]:
    response = httpx.post(
        server.base + "/api/v1/logs/bulk",
        json={"events": [{"action": "UPDATE", "severity": severity} for _ in range(n)]},
        headers={"Authorization": f"Bearer {token}"}, timeout=30,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    ids: list[str] = response.json()["ids"]
    return ids
