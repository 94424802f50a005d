"""PostgreSQL-encoded export lines equal the Python encoder's output, value for value."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from auditline.config import DatabaseSettings
from auditline.domain.normalise import canonical_ip
from auditline.domain.tenants import TenantId
from auditline.search.export import CSV_COLUMNS, ExportFormat, encode, frame
from auditline.search.model import SearchQuery
from auditline.storage.database import open_pool
from auditline.storage.search.backend import PostgresSearch
from tests.conftest import TokenFactory, bearer
from tests.integration.search_fixtures import base_time

pytestmark = pytest.mark.usefixtures("tenants")

TRICKY: list[dict[str, Any]] = [
    {"action": "READ", "ip_address": "::2:3", "message": "ipv4-compatible range"},
    {"action": "READ", "ip_address": "::ffff:1.2.3.4", "message": "ipv4-mapped"},
    {"action": "READ", "ip_address": "::1", "message": "loopback"},
    {"action": "READ", "ip_address": "2001:db8:0:0:1:0:0:1", "message": "two zero runs"},
    {"action": "READ", "ip_address": "fe80::1", "user_agent": "Mozilla/5.0, \"quoted\""},
    {"action": "READ", "ip_address": "203.0.113.9", "message": "line one\r\nline two"},
    {"action": "UPDATE", "user_id": "=cmd|' /C calc'!A0", "message": "-2+3",
     "resource_id": "@SUM(1)", "session_id": "x", "user_agent": "\tx", "request_id": "+1",
     "before": {"a": 1, "nested": {"list": [1, 2.5, None, True]}}, "after": {"a": 2},
     "metadata": {"ünïcode": "日本語", "quote": "\"", "comma": "a,b", "n": -0.5}},
    {"action": "LOGIN", "message": "", "metadata": {}},
]  # fmt: skip


async def _lines(backend: PostgresSearch, fmt: ExportFormat) -> AsyncIterator[list[str]]:
    async for batch in backend.export_lines(
        TenantId("acme"), SearchQuery(), fmt=fmt, order="asc", batch_size=3
    ):
        yield batch


async def _both(backend: PostgresSearch, fmt: ExportFormat) -> tuple[str, str]:
    native = b"".join([c async for c in frame(_lines(backend, fmt), fmt)]).decode()
    batches = backend.export(TenantId("acme"), SearchQuery(), order="asc", batch_size=3)
    python = b"".join([c async for c in encode(batches, fmt)]).decode()
    return native, python


async def test_postgres_and_python_encodings_agree(
    client: httpx.AsyncClient, make_token: TokenFactory, database_url: str
) -> None:
    base = base_time()
    events = [
        # alternate whole seconds and microseconds: both spellings of the time
        {**e, "timestamp": base.replace(second=i, microsecond=0 if i % 2 else 123450).isoformat()}
        for i, e in enumerate(TRICKY)
    ]
    response = await client.post(
        "/api/v1/logs/bulk", json={"events": events}, headers=bearer(make_token("admin", "acme"))
    )
    assert response.status_code == 201, response.text
    pool = await open_pool(
        database_url, DatabaseSettings(url=database_url, pool_min_size=1, pool_max_size=2)
    )
    try:
        backend = PostgresSearch(pool)
        native, python = await _both(backend, "csv")
        native_rows = list(csv.reader(io.StringIO(native, newline="")))
        python_rows = list(csv.reader(io.StringIO(python, newline="")))
        assert native_rows[0] == python_rows[0] == list(CSV_COLUMNS)
        assert len(native_rows) == len(TRICKY) + 1
        json_columns = {"changed_fields", "metadata", "before", "after"}
        for n_row, p_row in zip(native_rows[1:], python_rows[1:], strict=True):
            for column, n, p in zip(CSV_COLUMNS, n_row, p_row, strict=True):
                if column in json_columns and n:
                    assert json.loads(n) == json.loads(p), column
                else:
                    assert n == p, (column, n, p)
        for fmt in ("json", "ndjson"):
            native, python = await _both(backend, fmt)  # type: ignore[arg-type]
            if fmt == "json":
                assert json.loads(native) == json.loads(python)
                assert len(json.loads(native)) == len(TRICKY)
            else:
                assert [json.loads(x) for x in native.splitlines()] == [
                    json.loads(x) for x in python.splitlines()
                ]
        ips = [json.loads(x)["ip_address"] for x in native.splitlines()]
        # The spelling the leaf hash covers, the same on every Python version.
        assert ips[:5] == [canonical_ip(e["ip_address"]) for e in TRICKY[:5]]
        assert ips[0] == "::2:3"
        assert ips[1] == "::ffff:1.2.3.4"
        assert ips[3] == "2001:db8::1:0:0:1"
    finally:
        await pool.close()
