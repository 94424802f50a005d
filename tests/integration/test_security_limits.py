"""Abuse limits over HTTP: token buckets (in-process and shared), auth-failure floods, slow bodies.

Budgets are tiny and refill slowly (1 token per 1000 s), so every request is accounted for
and nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from starlette.types import Message

from auditline.app import create_app
from auditline.config import RateBudget, Settings
from tests.conftest import TokenFactory, bearer

pytestmark = pytest.mark.usefixtures("tenants")

SLOW = 0.001  # tokens per second


@pytest.fixture
def settings(settings: Settings) -> Settings:
    limits = settings.rate_limits
    limits.read_per_principal = RateBudget(rate=SLOW, burst=3)
    limits.read_per_tenant = RateBudget(rate=SLOW, burst=5)
    limits.ingest_per_principal = RateBudget(rate=SLOW, burst=2)
    limits.ingest_per_tenant = RateBudget(rate=SLOW, burst=100)
    limits.auth_failures_per_client = RateBudget(rate=SLOW, burst=3)
    return settings


def fields(response: httpx.Response) -> tuple[str, str]:
    return response.headers["ratelimit-policy"], response.headers["ratelimit"]


async def test_principal_and_tenant_buckets_with_ratelimit_fields(
    client: httpx.AsyncClient, make_token: TokenFactory, database_url: str
) -> None:
    alice, bob, carol = (bearer(make_token("admin", "acme", sub=s)) for s in ("a", "b", "c"))
    states = []
    for _ in range(3):
        response = await client.get("/api/v1/api-keys", headers=alice)
        assert response.status_code == 200
        states.append(fields(response)[1])
    assert fields(response)[0] == '"principal-read";q=3;w=3000, "tenant-read";q=5;w=5000'
    assert [s.replace(" ", "") for s in states] == [
        '"principal-read";r=2;t=1000,"tenant-read";r=4;t=1000',
        '"principal-read";r=1;t=1000,"tenant-read";r=3;t=1000',
        '"principal-read";r=0;t=1000,"tenant-read";r=2;t=1000',
    ]
    limited = await client.get("/api/v1/api-keys", headers=alice)
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["type"].endswith("/rate-limited")
    assert int(limited.headers["retry-after"]) >= 999
    assert fields(limited)[1] == '"principal-read";r=0;t=1000'

    # alice's refusal did not spend acme's budget: two tokens left for everyone else
    assert [(await client.get("/api/v1/tenants", headers=bob)).status_code for _ in range(3)] == [
        200, 200, 429,
    ]  # fmt: skip
    refused = await client.get("/api/v1/tenants/acme", headers=carol)
    assert (refused.status_code, fields(refused)[1].split(", ")[-1]) == (
        429, '"tenant-read";r=0;t=1000',
    )  # fmt: skip

    # ingest has its own budgets
    posts = [
        await client.post("/api/v1/logs", json={"action": "X"}, headers=alice) for _ in range(3)
    ]
    assert [p.status_code for p in posts] == [201, 201, 429]
    assert '"principal-ingest";q=2' in fields(posts[0])[0]
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT count(*) FROM events WHERE tenant_id = 'acme'").fetchone()
    assert stored == (2,)  # a 429 stores nothing


async def test_a_caller_cannot_spend_another_tenants_budget(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    mallory = bearer(make_token("admin", "acme", sub="mallory"))
    for _ in range(3):
        probe = await client.get(
            "/api/v1/api-keys", params={"tenant_id": "globex"}, headers=mallory
        )
        assert probe.status_code == 404
        assert '"tenant-read"' not in probe.headers["ratelimit"]
    globex = bearer(make_token("admin", "globex"))
    response = await client.get("/api/v1/api-keys", headers=globex)
    assert '"tenant-read";r=4' in response.headers["ratelimit"]  # untouched by mallory


async def test_failed_authentication_floods_get_429_and_stop_being_recorded(
    client: httpx.AsyncClient, make_token: TokenFactory, database_url: str
) -> None:
    bad = {"Authorization": "Bearer not-a-token"}
    statuses = [(await client.get("/api/v1/tenants", headers=bad)).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    limited = await client.get("/api/v1/tenants", headers=bad)
    assert '"client-auth-failures";r=0' in limited.headers["ratelimit"]
    with psycopg.connect(database_url) as conn:
        recorded = conn.execute("SELECT count(*) FROM events WHERE action = 'LOGIN'").fetchone()
    assert recorded == (3,)
    # valid credentials from the same address are not locked out
    good = await client.get("/api/v1/tenants", headers=bearer(make_token("admin", "acme")))
    assert good.status_code == 200


@asynccontextmanager
async def api_process(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_postgres_backend_shares_buckets_between_processes(
    settings: Settings, make_token: TokenFactory
) -> None:
    settings.rate_limits.backend = "postgres"
    alice = bearer(make_token("auditor", "acme", sub="alice"))
    async with api_process(settings) as first, api_process(settings) as second:
        seen = []
        for http in (first, second, first):
            response = await http.get("/api/v1/logs/00000000-0000-7000-8000-000000000000",
                                      headers=alice)  # fmt: skip
            seen.append((response.status_code, response.headers["ratelimit"].split(",")[0]))
        assert seen == [
            (404, '"principal-read";r=2;t=1000'),
            (404, '"principal-read";r=1;t=1000'),
            (404, '"principal-read";r=0;t=1000'),
        ]
        assert (await second.get("/api/v1/tenants/acme", headers=alice)).status_code == 429


async def test_a_body_trickled_in_too_slowly_is_408(
    settings: Settings, make_token: TokenFactory, database_url: str
) -> None:
    settings.http.body_timeout_seconds = 0.3
    admin = bearer(make_token("admin", "acme"))

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"action": '
        await asyncio.sleep(0.5)
        yield b'"CREATE"}'

    async with api_process(settings) as http:
        response = await http.post(
            "/api/v1/logs", content=trickle(),
            headers={**admin, "content-type": "application/json"},
        )  # fmt: skip
        assert response.status_code == 408
        assert response.headers["content-type"] == "application/problem+json"
        assert (await http.post("/api/v1/logs", json={"action": "OK"}, headers=admin)).is_success
    with psycopg.connect(database_url) as conn:
        actions = conn.execute("SELECT action FROM events WHERE tenant_id = 'acme'").fetchall()
    assert actions == [("OK",)]


async def test_a_client_that_hangs_up_mid_body_is_499_not_an_error(
    app: FastAPI,
    tenants: list[str],
    make_token: TokenFactory,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Half a body, then the connection closes: nothing is stored, the request is counted as
    499 (client closed request), and no 500 with a stack trace is logged for it."""
    admin = bearer(make_token("admin", "acme"))
    arriving = iter([
        {"type": "http.request", "body": b'{"action": "CRE', "more_body": True},
        {"type": "http.disconnect"},
    ])  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        return next(arriving)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/v1/logs", "raw_path": b"/api/v1/logs",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
        "headers": [(b"host", b"test"), (b"content-type", b"application/json"),
                    (b"content-length", b"40"),
                    (b"authorization", admin["Authorization"].encode())],
    }  # fmt: skip
    stored_before = count_events(database_url)
    with caplog.at_level(logging.ERROR):
        await app(scope, receive, send)

    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
    assert "unhandled error" not in caplog.text
    assert count_events(database_url) == stored_before


def count_events(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    assert row is not None
    return int(row[0])
