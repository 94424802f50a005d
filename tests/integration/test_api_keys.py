"""API keys end to end: create (secret once, hash only), use, scopes, expiry, revoke -> 401."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from auditline.config import Settings
from tests.conftest import TokenFactory, bearer

pytestmark = pytest.mark.usefixtures("tenants")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.api_keys.max_active_per_tenant = 3
    return settings


@pytest.fixture
def admin(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("admin", "acme", sub="alice-admin"))


async def create_key(
    client: httpx.AsyncClient, headers: dict[str, str], *scopes: str, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/api-keys", json={"name": "billing", "scopes": list(scopes), **extra},
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


async def test_key_lifecycle_create_use_list_revoke(
    client: httpx.AsyncClient, admin: dict[str, str], database_url: str
) -> None:
    response = await client.post(
        "/api/v1/api-keys", json={"name": "billing", "scopes": ["logs:write"]}, headers=admin
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    secret = created["key"]
    assert secret.startswith(created["prefix"] + "_")
    assert created["prefix"].startswith("alk_")
    assert (created["tenant_id"], created["scopes"], created["revoked_at"]) == (
        "acme", ["logs:write"], None,
    )  # fmt: skip

    # Stored: the SHA-256 of the key, never the key.
    [(digest,)] = rows(
        database_url, "SELECT secret_hash FROM api_keys WHERE id = %s", created["id"]
    )
    assert bytes(digest) == hashlib.sha256(secret.encode()).digest()
    dump = rows(
        database_url,
        "SELECT (SELECT string_agg(k::text, ' ') FROM api_keys k)"
        " || (SELECT string_agg(e::text, ' ') FROM events e)",
    )[0][0]
    assert secret not in dump
    assert secret.split("_", 2)[2] not in dump

    service = bearer(secret)
    event = await client.post("/api/v1/logs", json={"action": "CHARGE"}, headers=service)
    assert event.status_code == 201, event.text
    assert event.json()["tenant_id"] == "acme"
    bulk = await client.post(
        "/api/v1/logs/bulk", json={"events": [{"action": "A"}]}, headers=service
    )
    assert bulk.status_code == 201
    denied = await client.get(f"/api/v1/logs/{event.json()['id']}", headers=service)
    assert denied.status_code == 403  # logs:write does not read

    listed = (await client.get("/api/v1/api-keys", headers=admin)).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert listed[0]["last_used_at"] is not None

    revoked = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=admin)
    assert revoked.status_code == 204
    after = await client.post("/api/v1/logs", json={"action": "CHARGE"}, headers=service)
    assert after.status_code == 401
    assert "revoked" in after.json()["detail"]
    assert (
        await client.delete(f"/api/v1/api-keys/{created['id']}", headers=admin)
    ).status_code == 204

    changes = rows(
        database_url,
        """SELECT action, user_id, actor_type, outcome, resource_type, resource_id
             FROM events WHERE tenant_id = 'acme' AND resource_type IN ('api_key', 'api')
            ORDER BY seq""",
    )
    key_id, prefix, read_path = (
        created["id"],
        created["prefix"],
        f"/api/v1/logs/{event.json()['id']}",
    )
    assert changes == [
        ("CREATE", "alice-admin", "user", "success", "api_key", key_id),
        ("ACCESS", prefix, "service", "failure", "api", read_path),
        ("DELETE", "alice-admin", "user", "success", "api_key", key_id),
        # the revoked key proved its tenant with the right secret: recorded in acme's log
        ("LOGIN", prefix, "service", "failure", "api", "/api/v1/logs"),
    ]  # fmt: skip


async def test_read_key_reads_the_whole_tenant_as_a_service(
    client: httpx.AsyncClient, admin: dict[str, str], database_url: str
) -> None:
    key = await create_key(client, admin, "logs:read")
    stored = await client.post(
        "/api/v1/logs", json={"action": "X", "user_id": "bob"}, headers=admin
    )
    reader = bearer(key["key"])
    assert (
        await client.get(f"/api/v1/logs/{stored.json()['id']}", headers=reader)
    ).status_code == 200
    assert (
        await client.post("/api/v1/logs", json={"action": "X"}, headers=reader)
    ).status_code == 403
    assert (await client.get("/api/v1/api-keys", headers=reader)).status_code == 403
    assert (await client.get("/api/v1/tenants/acme", headers=reader)).status_code == 403
    assert (
        await client.get("/api/v1/logs/" + str(uuid.uuid4()), headers=reader)
    ).status_code == 404
    views = rows(
        database_url,
        "SELECT user_id, actor_type FROM events WHERE tenant_id = 'acme' AND action = 'VIEW'",
    )
    assert views == [(key["prefix"], "service")] * 2


async def test_expired_and_forged_keys_are_401_and_recorded_where_they_can_be_trusted(
    client: httpx.AsyncClient, admin: dict[str, str], database_url: str
) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    key = await create_key(client, admin, "logs:write", expires_at=soon)
    assert key["expires_at"] is not None
    service = bearer(key["key"])
    assert (await client.post("/api/v1/logs", json={"action": "X"}, headers=service)).is_success
    rows(database_url, "UPDATE api_keys SET expires_at = now() - interval '1 s' RETURNING 1")
    expired = await client.post("/api/v1/logs", json={"action": "X"}, headers=service)
    assert (expired.status_code, "expired" in expired.json()["detail"]) == (401, True)

    forged = key["prefix"] + "_" + "A" * 43  # a real prefix, a guessed secret
    for token in (forged, "alk_short", key["key"] + "x"):
        response = await client.post("/api/v1/logs", json={"action": "X"}, headers=bearer(token))
        assert response.status_code == 401
        assert response.json()["detail"] in {"API key is not valid", "malformed API key"}
    records = rows(
        database_url,
        """SELECT tenant_id, metadata->>'reason', metadata->>'key_prefix' FROM events
            WHERE action = 'LOGIN' ORDER BY received_at, seq""",
    )
    assert records == [
        ("acme", "key_expired", key["prefix"]),
        ("platform", "unknown_key", key["prefix"]),  # unproven: never in acme's own log
        ("platform", "malformed", None),
        ("platform", "malformed", None),
    ]

    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = await client.post(
        "/api/v1/api-keys", json={"name": "x", "scopes": ["logs:read"], "expires_at": past},
        headers=admin,
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/expires_at"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["logs:admin"]},
        {"name": "", "scopes": ["logs:read"]},
        {"name": "x", "scopes": ["logs:read"], "expires_at": "2030-01-01T00:00:00"},
        {"name": "x", "scopes": ["logs:read"], "secret": "chosen"},
    ],
)
async def test_invalid_key_requests_are_422(
    client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any]
) -> None:
    response = await client.post("/api/v1/api-keys", json=body, headers=admin)
    assert response.status_code == 422, response.text


async def test_active_keys_per_tenant_are_bounded(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    keys = [await create_key(client, admin, "logs:write") for _ in range(3)]
    response = await client.post(
        "/api/v1/api-keys", json={"name": "one more", "scopes": ["logs:write"]}, headers=admin
    )
    assert response.status_code == 409
    await client.delete(f"/api/v1/api-keys/{keys[0]['id']}", headers=admin)
    assert await create_key(client, admin, "logs:write")


async def test_cli_creates_a_key_that_works_and_is_recorded(
    client: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITLINE_")}
    env["AUDITLINE_DATABASE__URL"] = database_url
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "auditline", "keys", "create", "--tenant", "acme",
         "--scope", "logs:write", "--name", "importer", "--data-dir", str(settings.data_dir)],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("alk_")
    assert "shown only once" in result.stderr
    response = await client.post("/api/v1/logs", json={"action": "IMPORT"}, headers=bearer(key))
    assert response.status_code == 201, response.text
    [(user_id, actor_type)] = rows(
        database_url,
        "SELECT user_id, actor_type FROM events WHERE resource_type = 'api_key'",
    )
    assert user_id.startswith("cli")
    assert actor_type == "system"
