"""A real ``auditline serve`` process: start, use, SIGKILL, restart, nothing acknowledged lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from auditline.cli.serve import default_workers
from auditline.storage.migrations import available_migrations

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "auditline"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, check=False, env=_env(),
    )  # fmt: skip


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AUDITLINE_")}


def websocket_upgrade(port: int, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """The status and body of the answer to a WebSocket handshake (RFC 6455) for *path*."""
    lines = [
        f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
        "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13", *(f"{k}: {v}" for k, v in headers.items()),
    ]  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


class Server:
    def __init__(self, data_dir: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.data_dir, self.port = data_dir, port
        self.env = {**_env(), **(env or {})}  # AUDITLINE_* settings for this server only
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[str] | None = None
        self._logfile: IO[str] | None = None

    def start(self, *extra: str) -> None:
        self._close_log()
        self._logfile = self._log()
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port), *extra],
            stdout=self._logfile, stderr=subprocess.STDOUT, text=True, env=self.env,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.output()}")
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not become ready")

    def _log(self) -> IO[str]:
        # A file, not a pipe: a pipe nobody reads fills up and blocks the server's logging.
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        return (self.data_dir.parent / "server.log").open("a")

    def _close_log(self) -> None:
        if self._logfile is not None:
            self._logfile.close()
            self._logfile = None

    def output(self) -> str:
        return (self.data_dir.parent / "server.log").read_text()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> str:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        if sig == signal.SIGKILL:
            self._wait_for_workers_to_stop()
        self._close_log()
        return self.output()

    def _wait_for_workers_to_stop(self) -> None:
        """serve starts one API process per CPU; killed, it cannot stop them, so each stops
        itself once its parent is gone (``app._stop_with_supervisor``). Until then they
        would still answer on the port, beside the next server."""
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return
            time.sleep(0.1)
        raise AssertionError("API processes kept serving after serve was killed")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data", free_port())
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.stop()
    # A SIGKILLed server leaves its PostgreSQL running; stop it so the test leaves nothing.
    pg = tmp_path / "data" / "postgres"
    if (pg / "postmaster.pid").exists():
        from auditline.storage.embedded import EmbeddedPostgres

        EmbeddedPostgres(tmp_path / "data").stop(force=True, mode="immediate")


def test_readme_flow_survives_sigkill_and_refuses_a_second_server(server: Server) -> None:
    server.start()
    token_file = server.data_dir / "bootstrap-admin.jwt"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert (server.data_dir / "signing-key.pem").stat().st_mode & 0o777 == 0o600
    admin = {"Authorization": f"Bearer {token_file.read_text().strip()}"}

    created = httpx.post(
        server.base + "/api/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin
    )
    assert created.status_code == 201, created.text

    minted = run_cli("token", "--tenant", "acme", "--role", "user", "--sub", "svc",
                     data_dir=server.data_dir)  # fmt: skip
    assert minted.returncode == 0, minted.stderr
    writer = {"Authorization": f"Bearer {minted.stdout.strip()}"}
    ids = []
    with httpx.Client(base_url=server.base, headers=writer, timeout=10) as http:
        for i in range(20):
            response = http.post("/api/v1/logs", json={"action": "LOGIN", "user_id": f"u{i}"})
            assert response.status_code == 201
            ids.append(response.json()["id"])
        bulk = http.post(
            "/api/v1/logs/bulk",
            json={"events": [{"action": "VIEW", "id": str(uuid.uuid4())} for _ in range(100)]},
        )
        assert bulk.status_code == 201
        ids += bulk.json()["ids"]

    # One API process per CPU, each writing its metrics to the data dir: a scrape answered
    # by any of them counts every event, whichever process stored it.
    pids = {f.stem.rsplit("_", 1)[1] for f in (server.data_dir / "metrics").glob("counter_*.db")}
    assert len(pids) == default_workers()
    scraped = httpx.get(server.base + "/metrics").text
    assert 'auditline_events_ingested_total{tenant="_other"} 120.0' in scraped

    # A WebSocket upgrade where there is no stream is understood as one, and refused with
    # the 404 problem a plain request gets (before: taken for GET /logs/{id}, a 422).
    status, body = websocket_upgrade(server.port, "/api/v1/logs/no-such-stream", writer)
    assert status == 404, body
    assert '"type":"https://auditline.dev/problems/http-404"' in body.replace(" ", "")

    second = run_cli("serve", "--port", str(free_port()), data_dir=server.data_dir)
    assert second.returncode != 0
    assert "already using" in second.stderr

    listed = run_cli("tenants", "list", data_dir=server.data_dir)  # uses the running server
    assert listed.returncode == 0, listed.stderr
    assert '"id": "acme"' in listed.stdout

    server.stop(signal.SIGKILL)
    server.start()
    reader = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    with httpx.Client(base_url=server.base, headers=reader, timeout=10) as http:
        for event_id in ids:
            response = http.get(f"/api/v1/logs/{event_id}", params={"tenant_id": "acme"})
            assert response.status_code == 200, event_id

    out = server.stop()
    assert "admin token in" in out
    assert not (server.data_dir / "postgres" / "postmaster.pid").exists()  # clean stop


def test_migrate_and_tenants_commands_start_and_stop_their_own_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    migrated = run_cli("migrate", data_dir=data_dir)
    assert migrated.returncode == 0, migrated.stderr
    shipped = len(available_migrations())  # every migration, whatever their number
    assert f"applied {shipped} migration" in migrated.stdout
    assert run_cli("migrate", data_dir=data_dir).stdout.startswith("applied 0")
    created = run_cli("tenants", "create", "acme", "--name", "Acme", data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    duplicate = run_cli("tenants", "create", "acme", data_dir=data_dir)
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


def test_token_command_refuses_all_tenants_for_non_admins(tmp_path: Path) -> None:
    refused = run_cli("token", "--tenant", "*", "--role", "auditor", data_dir=tmp_path)
    assert refused.returncode == 2
    assert "only for --role admin" in refused.stderr
