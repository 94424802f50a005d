"""The Postman collection (clients/postman) is current and runs green under newman against a
real ``auditline serve``.

Both need Node.js: without it they are skipped, except under CI (``CI=true``), where a
missing Node is a failure. The pinned npm packages are installed on first use (``npm ci``
in tools/postman, again only when its lock file changes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_serve_process import Server
from tools.postman import generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def newman() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Node.js (node and npm) is required under CI for the Postman tests")
        pytest.skip("Node.js is not installed")
    return generate.ensure_node_tools() / "newman"


def operations(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(name, ``METHOD /path``) of every request in a collection's *items*, in order (a
    request whose operation has two tags is in two folders)."""
    found: list[tuple[str, str]] = []
    for item in items:
        if "item" in item:
            found += operations(item["item"])
        else:
            found.append((item["name"], generate.operation(item["request"])))
    return found


def test_the_committed_collection_matches_the_openapi_document(
    newman: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate.main(["--check"]) == 0, capsys.readouterr().err


def test_the_collection_runs_green_under_newman(
    newman: Path, server: Server, admin_token: str, tenants: list[str], tmp_path: Path
) -> None:
    report = tmp_path / "newman.json"
    run = subprocess.run(
        [
            str(newman), "run", str(generate.COLLECTION),
            "--environment", str(generate.ENVIRONMENT),
            "--env-var", f"baseUrl={server.base}",
            "--env-var", f"token={admin_token}",
            "--env-var", "tenant_id=acme",
            # The test server's read budget is 5 a second per principal (conftest.py).
            "--delay-request", "250",
            "--reporters", "cli,json", "--reporter-json-export", str(report),
        ],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]

    summary = json.loads(report.read_text())["run"]
    requests = operations(json.loads(generate.COLLECTION.read_text())["item"])
    assert summary["stats"]["requests"]["total"] == len(requests) >= len(generate.WALK)
    named = dict(requests)
    assert summary["stats"]["assertions"]["failed"] == 0
    assert summary["failures"] == []
    answers = {named[e["item"]["name"]]: e["response"]["code"] for e in summary["executions"]}
    assert answers["POST /api/v1/tenants"] == 201
    assert answers["POST /api/v1/logs"] == 201
    assert answers["GET /api/v1/logs/{event_id}"] == 200  # the id the create captured
    assert answers["DELETE /api/v1/api-keys/{key_id}"] == 204
