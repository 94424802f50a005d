"""GET /api/v1/logs/export: CSV, JSON and NDJSON read back and compared with search."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import psycopg
import pytest

from auditline.config import SearchSettings, Settings
from auditline.search.export import CSV_COLUMNS
from tests.conftest import TokenFactory, bearer
from tests.integration.search_fixtures import ACME_EVENTS, GLOBEX_EVENTS, DataSet, load

pytestmark = pytest.mark.usefixtures("tenants")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Batches of 3 rows: every export below spans several batches and transactions.
    settings.search = SearchSettings(export_batch_size=3)
    return settings


@pytest.fixture
def auditor(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("auditor", "acme", sub="auditor-acme"))


FORMULAS = {
    "f0": {
        "action": "UPDATE", "user_id": "@mallory", "resource_type": "sheet",
        "resource_id": "-1+2", "message": '=HYPERLINK("http://evil.example","click")',
        "user_agent": "+SUM(A1:A9)", "metadata": {"note": "=1+1"},
    },
    # Identifiers cannot hold a tab (issue #16); the free-text user agent can.
    "f1": {"action": "READ", "user_id": "tabbed", "user_agent": "\tindent",
           "message": "\rcarriage", "session_id": "=x"},
    "f2": {"action": "READ", "user_id": "safe", "message": "a = b, \"quoted\"\nnext line"},
}  # fmt: skip


@pytest.fixture
async def data(client: httpx.AsyncClient, make_token: TokenFactory) -> DataSet:
    await load(client, bearer(make_token("admin", "globex")), "globex", GLOBEX_EVENTS)
    return await load(
        client, bearer(make_token("admin", "acme")), "acme", {**ACME_EVENTS, **FORMULAS}
    )


async def export(
    client: httpx.AsyncClient, headers: dict[str, str], data: DataSet, **params: Any
) -> httpx.Response:
    return await client.get(
        "/api/v1/logs/export", params={**data.window, **params}, headers=headers
    )


async def searched(
    client: httpx.AsyncClient, headers: dict[str, str], data: DataSet, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/v1/logs",
        params={**data.window, "order": "asc", "limit": 1000, **params},
        headers=headers,
    )
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_json_export_equals_the_search_results(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    response = await export(client, auditor, data, format="json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="auditline-acme-')
    assert disposition.endswith('.json"')
    exported = json.loads(response.content)
    assert exported == await searched(client, auditor, data)
    assert len(exported) == len(ACME_EVENTS) + len(FORMULAS)


async def test_ndjson_export_is_one_event_per_line(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    response = await export(client, auditor, data, format="ndjson", order="desc")
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.text.split("\n")
    assert lines[-1] == ""
    exported = [json.loads(line) for line in lines[:-1]]
    assert exported == list(reversed(await searched(client, auditor, data)))


async def test_csv_export_has_the_documented_columns_and_reads_back(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    response = await export(client, auditor, data, q="invoice OR signed")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].endswith('.csv"')
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    expected = await searched(client, auditor, data, q="invoice OR signed")
    assert len(rows) - 1 == len(expected) == 6
    for row, event in zip(rows[1:], expected, strict=True):
        cells = dict(zip(CSV_COLUMNS, row, strict=True))
        for column in ("id", "tenant_id", "timestamp", "received_at", "action", "severity",
                       "message", "leaf_hash"):  # fmt: skip
            assert cells[column] == str(event[column]), column
        assert int(cells["seq"]) == event["seq"]
        assert cells["user_id"] == (event["user_id"] or "")
        assert cells["ip_address"] == (event["ip_address"] or "")
        assert json.loads(cells["metadata"]) == event["metadata"]
        assert (json.loads(cells["before"]) if cells["before"] else None) == event["before"]
        assert (json.loads(cells["changed_fields"]) if cells["changed_fields"] else None) == (
            event["changed_fields"]
        )


async def test_csv_neutralises_formula_injection(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    response = await export(client, auditor, data, action=["UPDATE", "READ"], q="-user_id:bob")
    reader = csv.reader(io.StringIO(response.text, newline=""))
    rows = [dict(zip(CSV_COLUMNS, r, strict=True)) for r in reader][1:]
    by_user = {r["user_id"]: r for r in rows}
    evil = by_user["'@mallory"]
    assert evil["resource_id"] == "'-1+2"
    assert evil["message"] == "'" + FORMULAS["f0"]["message"]
    assert evil["user_agent"] == "'+SUM(A1:A9)"
    assert json.loads(evil["metadata"]) == {"note": "=1+1"}  # inside JSON: not at cell start
    tabbed = by_user["tabbed"]
    assert tabbed["user_agent"] == "'\tindent"
    assert tabbed["message"] == "'\rcarriage"
    assert tabbed["session_id"] == "'=x"
    safe = by_user["safe"]
    assert safe["message"] == FORMULAS["f2"]["message"]  # commas, quotes, newlines survive
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    # JSON exports carry the values unchanged.
    exported = json.loads(
        (await export(client, auditor, data, format="json", user_id="@mallory")).content
    )
    assert exported[0]["message"] == FORMULAS["f0"]["message"]


async def test_an_empty_export_is_still_a_valid_file(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    assert (
        json.loads((await export(client, auditor, data, format="json", user_id="nobody")).content)
        == []
    )
    assert (await export(client, auditor, data, format="ndjson", user_id="nobody")).content == b""
    rows = list(
        csv.reader(io.StringIO((await export(client, auditor, data, user_id="nobody")).text))
    )
    assert rows == [list(CSV_COLUMNS)]


async def test_export_is_tenant_scoped_and_role_checked(
    client: httpx.AsyncClient, data: DataSet, make_token: TokenFactory, auditor: dict[str, str]
) -> None:
    exported = json.loads((await export(client, auditor, data, format="json")).content)
    assert {e["tenant_id"] for e in exported} == {"acme"}
    assert "?" not in data.names(exported)
    other = await export(client, auditor, data, tenant_id="globex")
    assert other.status_code == 404
    user = bearer(make_token("user", "acme", sub="alice"))
    forbidden = await export(client, user, data)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == "application/problem+json"
    bad = await export(client, auditor, data, q="(", format="csv")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["position"] == 1  # the end: a term was expected
    wrong_format = await export(client, auditor, data, format="xlsx")
    assert wrong_format.status_code == 422


async def test_an_export_is_recorded_before_and_after(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet, database_url: str
) -> None:
    response = await client.get(
        "/api/v1/logs/export",
        params={**data.window, "format": "ndjson", "user_id": "alice"},
        headers={**auditor, "X-Request-ID": "req-export-1"},
    )
    assert response.status_code == 200
    assert len(response.text.splitlines()) == 3
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT user_id, action, resource_type, metadata FROM events
                WHERE request_id = 'req-export-1' ORDER BY seq"""
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [("auditor-acme", "EXPORT", "audit_log")] * 2
    started, completed = rows[0][3], rows[1][3]
    assert started["phase"] == "started"
    assert started["result_count"] is None
    assert started["format"] == "ndjson"
    assert started["query"]["user_id"] == "alice"
    assert completed["phase"] == "completed"
    assert completed["result_count"] == 3


async def test_export_keeps_a_fixed_snapshot_of_the_matching_events(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    # The export's own "started" record is written after its first batch was read and
    # lands inside the result's time order (asc: last); it must not appear in the file.
    response = await client.get(
        "/api/v1/logs/export",
        params={"format": "json", "start": data.window["start"]},
        headers=auditor,
    )
    exported = json.loads(response.content)
    assert all(e["action"] != "EXPORT" or e["resource_type"] != "audit_log" for e in exported)
