"""Two API processes writing and sealing one tenant's log at once: ``seq`` stays gap-free,
and the tree the sealers built equals the tree recomputed from the rows."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.test_serve_process import Server, free_port, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data", free_port())
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.stop()


def _writer(base: str, headers: dict[str, str], worker: int) -> int:
    sent = 0
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        for i in range(30):
            response = http.post(
                "/api/v1/logs", json={"action": "WRITE", "message": f"w{worker} {i}"}
            )
            assert response.status_code == 201, response.text
            sent += 1
        bulk = http.post("/api/v1/logs/bulk", json={"events": [{"action": "BULK"}] * 40})
        assert bulk.status_code == 201, bulk.text
    return sent + 40


def test_two_serving_processes_keep_one_gap_free_log_that_verifies(server: Server) -> None:
    server.start("--workers", "2")
    admin = {
        "Authorization": f"Bearer {(server.data_dir / 'bootstrap-admin.jwt').read_text().strip()}"
    }
    created = httpx.post(server.base + "/api/v1/tenants", json={"id": "acme", "name": "Acme"},
                         headers=admin)  # fmt: skip
    assert created.status_code == 201, created.text
    minted = run_cli("token", "--tenant", "acme", "--role", "admin", "--sub", "svc",
                     data_dir=server.data_dir)  # fmt: skip
    assert minted.returncode == 0, minted.stderr
    writer = {"Authorization": f"Bearer {minted.stdout.strip()}"}
    with ThreadPoolExecutor(8) as pool:
        written = sum(pool.map(lambda w: _writer(server.base, writer, w), range(8)))
    assert written == 8 * 70

    with httpx.Client(base_url=server.base, headers=writer, timeout=30) as http:
        exported = http.get(
            "/api/v1/logs/export", params={"format": "ndjson", "include_proofs": "true"}
        )
        assert exported.status_code == 200
        lines = [orjson.loads(line) for line in exported.content.splitlines()]
        head, events = lines[0], lines[1:]
        assert len(events) == written
        # Gap-free from 0: every seq below the export's checkpoint is taken exactly once.
        assert sorted(e["seq"] for e in events) == list(range(written))
        assert all(e["proof"] is not None for e in events)
        assert head["tree_size"] >= written
        key = http.get("/.well-known/auditline-checkpoint-key").text.strip()
    server.stop()

    export_file = server.data_dir.parent / "acme.ndjson"
    export_file.write_bytes(exported.content)
    offline = run_cli("verify", str(export_file), "--key", key, data_dir=server.data_dir)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    live = run_cli("verify", "--tenant", "acme", data_dir=server.data_dir)
    assert live.returncode == 0, live.stdout + live.stderr
    assert "OK" in live.stdout
