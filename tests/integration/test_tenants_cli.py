"""``auditline tenants``: an operator's tenant is created and recorded exactly as an admin's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import psycopg
import pytest

from auditline.cli import main

RECORD = """SELECT action, resource_type, resource_id, message, actor_type, user_id,
                   after - 'name' AS after
              FROM events WHERE tenant_id = 'platform' AND resource_type = 'tenant'
               AND resource_id = %s"""


def _record(url: str, tenant: str) -> tuple[object, ...]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(RECORD, (tenant,)).fetchall()
    assert len(rows) == 1, rows
    return rows[0]


async def test_cli_tenant_creation_is_recorded_in_the_platform_log_like_the_api(
    client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    response = await client.post(
        "/api/v1/tenants", json={"id": "by-api", "name": "By API"}, headers=platform_admin
    )
    assert response.status_code == 201, response.text
    monkeypatch.setenv("AUDITLINE_DATABASE__URL", database_url)
    args = ["tenants", "create", "by-cli", "--name", "By CLI", "--data-dir", str(tmp_path)]
    assert await asyncio.to_thread(main, args) == 0
    assert "created tenant by-cli" in capsys.readouterr().out

    api, cli = _record(database_url, "by-api"), _record(database_url, "by-cli")
    assert api[:2] == cli[:2] == ("CREATE", "tenant")
    assert (api[3], cli[3]) == ("created tenant by-api", "created tenant by-cli")
    assert (api[4], api[5]) == ("user", "root")
    assert cli[4] == "system"
    assert str(cli[5]).startswith("cli")
    assert api[6] == cli[6]  # the same fields and defaults, names aside

    assert await asyncio.to_thread(main, ["tenants", "list", "--data-dir", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert '"id": "by-cli"' in listed
    assert '"id": "by-api"' in listed
    assert '"platform"' not in listed


def test_cli_refuses_a_tenant_id_that_is_not_a_slug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tenants", "create", "Not A Slug", "--data-dir", str(tmp_path)]) == 2
    assert "lower-case slug" in capsys.readouterr().err


async def test_cli_refuses_an_existing_tenant(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AUDITLINE_DATABASE__URL", database_url)
    args = ["tenants", "create", "twice", "--data-dir", str(tmp_path)]
    assert await asyncio.to_thread(main, args) == 0
    assert await asyncio.to_thread(main, args) == 1
    assert "already exists" in capsys.readouterr().err
