"""``auditline export``: the operator's export writes the same file as the API."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import httpx
import psycopg
import pytest

from auditline.cli import main
from auditline.search.export import CSV_COLUMNS
from tests.conftest import TokenFactory, bearer
from tests.integration.search_fixtures import ACME_EVENTS, load

pytestmark = pytest.mark.usefixtures("tenants")


async def test_cli_export_matches_the_api_and_is_recorded(
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    admin = bearer(make_token("admin", "acme"))
    data = await load(client, admin, "acme", ACME_EVENTS)
    monkeypatch.setenv("AUDITLINE_DATABASE__URL", database_url)
    out = tmp_path / "acme.ndjson"
    args = ["export", "--tenant", "acme", "--format", "ndjson", "--out", str(out),
            "--start", data.window["start"], "--end", data.window["end"],
            "-q", "invoice OR signed", "--data-dir", str(tmp_path / "d")]  # fmt: skip
    assert await asyncio.to_thread(main, args) == 0
    assert "exported 6 events of acme" in capsys.readouterr().err
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    api = await client.get(
        "/api/v1/logs/export",
        params={**data.window, "q": "invoice OR signed", "format": "ndjson"},
        headers=admin,
    )
    assert exported == [json.loads(line) for line in api.text.splitlines()]
    assert not (tmp_path / "acme.ndjson.partial").exists()

    csv_out = tmp_path / "acme.csv"
    args = ["export", "--tenant", "acme", "--out", str(csv_out), "--no-progress",
            "--user-id", "alice", "--start", data.window["start"]]  # fmt: skip
    assert await asyncio.to_thread(main, args) == 0
    with csv_out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {r[CSV_COLUMNS.index("user_id")] for r in rows[1:]} == {"alice"}
    assert len(rows) == 4

    with psycopg.connect(database_url) as conn:
        records = conn.execute(
            """SELECT metadata->>'phase', metadata->'result_count', metadata->>'via'
                 FROM events WHERE tenant_id = 'acme' AND action = 'EXPORT'
                  AND metadata->>'via' = 'cli' ORDER BY seq"""
        ).fetchall()
    assert records == [("started", None, "cli"), ("completed", 6, "cli"),
                       ("started", None, "cli"), ("completed", 3, "cli")]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-q", "user_id:alice (oops"], "missing ')'"),
        (["--start", "yesterday"], "--start"),
        (["--ip-address", "not-an-ip"], "--ip-address"),
    ],
)
def test_cli_export_rejects_bad_filters_before_touching_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "x.csv"
    assert main(["export", "--tenant", "acme", "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


async def test_cli_export_of_an_unknown_tenant_fails(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("AUDITLINE_DATABASE__URL", database_url)
    out = tmp_path / "x.csv"
    args = ["export", "--tenant", "nope", "--out", str(out), "--data-dir", str(tmp_path / "d")]
    assert await asyncio.to_thread(main, args) == 1
    assert "tenant 'nope' not found" in capsys.readouterr().err
    assert not out.exists()
