"""Bulk ingest (all or nothing, idempotent), tenants, health, body limits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from auditline.config import Settings
from tests.conftest import TokenFactory, bearer


def events(n: int, **overrides: Any) -> list[dict[str, Any]]:
    return [
        {"action": "CREATE", "resource_type": "doc", "resource_id": f"d-{i}", **overrides}
        for i in range(n)
    ]


def count(database_url: str, where: str = "true") -> int:
    with psycopg.connect(database_url) as conn:
        # Client tenants only: the platform log records tenant creation and denials.
        row = conn.execute(
            f"SELECT count(*) FROM events WHERE tenant_id <> 'platform' AND ({where})"  # noqa: S608
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def acme(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("admin", "acme"))


@pytest.mark.usefixtures("tenants")
async def test_bulk_stores_every_event_with_consecutive_seqs(
    client: httpx.AsyncClient, acme: dict[str, str], database_url: str
) -> None:
    response = await client.post("/api/v1/logs/bulk", json={"events": events(250)}, headers=acme)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["inserted"], body["duplicates"], len(body["ids"])) == (250, 0, 250)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id, seq, resource_id FROM events WHERE tenant_id = 'acme' ORDER BY seq"
        ).fetchall()
    assert [r[1] for r in rows] == list(range(250))
    assert [str(r[0]) for r in rows] == body["ids"]  # request order is log order
    assert [r[2] for r in rows] == [f"d-{i}" for i in range(250)]


@pytest.mark.usefixtures("tenants")
@pytest.mark.parametrize("size", [10, 40])  # 40: prepared off the event loop, errors the same
async def test_bulk_with_one_invalid_event_stores_nothing_and_lists_every_error(
    client: httpx.AsyncClient, acme: dict[str, str], database_url: str, size: int
) -> None:
    batch = events(size)
    batch[3]["timestamp"] = "2026-01-01T00:00:00"  # naive
    batch[7]["action"] = "nope"
    batch[8]["message"] = "m" * 10_000  # over the configured limit
    response = await client.post("/api/v1/logs/bulk", json={"events": batch}, headers=acme)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert {(e["index"], e["pointer"]) for e in errors} >= {
        (3, "/events/3/timestamp"),
        (7, "/events/7/action"),
    }
    assert count(database_url) == 0
    # limit errors come after schema errors are fixed; they too stop the whole batch
    batch[3].pop("timestamp")
    batch[7]["action"] = "CREATE"
    response = await client.post("/api/v1/logs/bulk", json={"events": batch}, headers=acme)
    assert response.status_code == 422
    assert [(e["index"], e["pointer"]) for e in response.json()["errors"]] == [
        (8, "/events/8/message")
    ]
    assert count(database_url) == 0


@pytest.mark.usefixtures("tenants")
async def test_bulk_counts_duplicates_against_the_store(
    client: httpx.AsyncClient, acme: dict[str, str], database_url: str
) -> None:
    # An id repeated within one request is refused instead (issue #16, test_input_rules.py).
    known, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    first = await client.post(
        "/api/v1/logs/bulk", json={"events": events(1, id=known)}, headers=acme
    )
    assert first.json()["inserted"] == 1
    batch = events(1, id=known) + events(1, id=fresh) + events(1)
    response = await client.post("/api/v1/logs/bulk", json={"events": batch}, headers=acme)
    assert response.status_code == 201
    body = response.json()
    assert (body["inserted"], body["duplicates"]) == (2, 1)
    assert body["ids"][:2] == [known, fresh]
    assert count(database_url) == 3
    with psycopg.connect(database_url) as conn:
        seqs = [
            r[0]
            for r in conn.execute(
                "SELECT seq FROM events WHERE tenant_id = 'acme' ORDER BY seq"
            ).fetchall()
        ]
    assert seqs == [0, 1, 2]


@pytest.mark.usefixtures("tenants")
async def test_bulk_over_the_event_limit_is_rejected(
    client: httpx.AsyncClient, settings: Settings, acme: dict[str, str], database_url: str
) -> None:
    too_many = events(settings.ingest.bulk_max_events + 1)
    response = await client.post("/api/v1/logs/bulk", json={"events": too_many}, headers=acme)
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/events"
    assert count(database_url) == 0


@pytest.mark.usefixtures("tenants")
async def test_bulk_mixing_tenants_is_rejected(
    client: httpx.AsyncClient, make_token: TokenFactory, database_url: str
) -> None:
    both = bearer(make_token("admin", "acme", "globex"))
    batch = events(2, tenant_id="acme") + events(1, tenant_id="globex")
    response = await client.post("/api/v1/logs/bulk", json={"events": batch}, headers=both)
    assert response.status_code == 422
    assert count(database_url) == 0


@pytest.mark.usefixtures("tenants")
async def test_bulk_spanning_months_creates_partitions_on_demand(
    client: httpx.AsyncClient, acme: dict[str, str], database_url: str
) -> None:
    old = (datetime.now(UTC) - timedelta(days=700)).isoformat()
    response = await client.post(
        "/api/v1/logs/bulk", json={"events": events(3, timestamp=old)}, headers=acme
    )
    assert response.status_code == 201, response.text
    month = (datetime.now(UTC) - timedelta(days=700)).strftime("y%Ym%m")
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM events_{month}").fetchone()  # noqa: S608
    assert row == (3,)


@pytest.mark.usefixtures("tenants")
async def test_body_over_the_byte_limit_is_413_before_parsing(
    client: httpx.AsyncClient, settings: Settings, acme: dict[str, str], database_url: str
) -> None:
    padding = "x" * (settings.ingest.max_body_bytes + 10)
    response = await client.post(
        "/api/v1/logs/bulk",
        content=b'{"events": [{"action": "CREATE", "message": "' + padding.encode() + b'"}]}',
        headers={**acme, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"

    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"events": [{"action": "CREATE", "message": "'
        for _ in range(settings.ingest.max_body_bytes // 65536 + 2):
            yield b"x" * 65536
        yield b'"}]}'

    streamed = await client.post(
        "/api/v1/logs/bulk",
        content=chunks(),
        headers={**acme, "content-type": "application/json"},
    )
    assert streamed.status_code == 413
    assert count(database_url) == 0


async def test_deeply_nested_json_is_a_400_not_a_crash(
    client: httpx.AsyncClient, platform_admin: dict[str, str]
) -> None:
    body = b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await client.post(
        "/api/v1/logs/bulk",
        content=body,
        headers={**platform_admin, "content-type": "application/json"},
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"


async def test_platform_admin_creates_and_lists_tenants(
    client: httpx.AsyncClient, platform_admin: dict[str, str]
) -> None:
    created = await client.post(
        "/api/v1/tenants",
        json={"id": "acme", "name": "Acme Corp", "retention_days": 30},
        headers=platform_admin,
    )
    assert created.status_code == 201
    assert created.json()["retention_days"] == 30
    again = await client.post(
        "/api/v1/tenants", json={"id": "acme", "name": "Other"}, headers=platform_admin
    )
    assert again.status_code == 409
    listed = await client.get("/api/v1/tenants", headers=platform_admin)
    assert [t["id"] for t in listed.json()] == ["acme"]
    assert listed.json()[0]["name"] == "Acme Corp"


@pytest.mark.usefixtures("tenants")
async def test_tenant_admin_lists_only_own_tenants_and_cannot_create(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    admin = bearer(make_token("admin", "globex"))
    listed = await client.get("/api/v1/tenants", headers=admin)
    assert [t["id"] for t in listed.json()] == ["globex"]
    denied = await client.post("/api/v1/tenants", json={"id": "x", "name": "X"}, headers=admin)
    assert denied.status_code == 403
    auditor = bearer(make_token("auditor", "globex"))
    assert (await client.get("/api/v1/tenants", headers=auditor)).status_code == 403


async def test_invalid_tenant_slug_is_rejected(
    client: httpx.AsyncClient, platform_admin: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/tenants", json={"id": "Bad Tenant!", "name": "x"}, headers=platform_admin
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/id"


async def test_health_and_readiness_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()["database"]) == (200, "up")
    assert "search_index" not in ready.json()  # no OpenSearch configured, nothing to report


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz", headers={"X-Request-ID": "bad id\n"})
    assert len(made.headers["x-request-id"]) == 32


async def test_openapi_document_lists_the_v1_endpoints(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert {"/api/v1/logs", "/api/v1/logs/bulk", "/api/v1/logs/{event_id}",
            "/api/v1/tenants"} <= set(spec["paths"])  # fmt: skip
