"""Tenant settings: read and change by the tenant's admins, every change recorded with its diff."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import TokenFactory, bearer

pytestmark = pytest.mark.usefixtures("tenants")


def records(database_url: str, tenant: str, resource_type: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            """SELECT action, user_id, resource_id, before, after, changed_fields, request_id
                 FROM events WHERE tenant_id = %s AND resource_type = %s ORDER BY seq""",
            (tenant, resource_type),
        ).fetchall()


async def test_tenant_admin_reads_and_patches_settings_and_the_change_is_recorded(
    client: httpx.AsyncClient, make_token: TokenFactory, database_url: str
) -> None:
    admin = bearer(make_token("admin", "acme", sub="alice"))
    before = (await client.get("/api/v1/tenants/acme", headers=admin)).json()
    assert (before["id"], before["name"], before["retention_days"]) == ("acme", "Acme Corp", 90)

    patch = {"retention_days": 400, "archive_after_days": 30, "settings": {"region": "eu"}}
    response = await client.patch(
        "/api/v1/tenants/acme", json=patch, headers={**admin, "X-Request-ID": "req-42"}
    )
    assert response.status_code == 200, response.text
    after = response.json()
    assert {k: after[k] for k in patch} == patch
    assert after["name"] == "Acme Corp"  # untouched
    assert after["updated_at"] > before["updated_at"]
    assert (await client.get("/api/v1/tenants/acme", headers=admin)).json() == after

    cleared = await client.patch(
        "/api/v1/tenants/acme", json={"archive_after_days": None}, headers=admin
    )
    assert cleared.json()["archive_after_days"] is None
    unchanged = await client.patch(
        "/api/v1/tenants/acme", json={"retention_days": 400}, headers=admin
    )
    assert unchanged.status_code == 200

    assert records(database_url, "acme", "tenant") == [
        (
            "UPDATE",
            "alice",
            "acme",
            {"retention_days": 90, "archive_after_days": None, "settings": {}},
            {"retention_days": 400, "archive_after_days": 30, "settings": {"region": "eu"}},
            ["archive_after_days", "retention_days", "settings"],
            "req-42",
        ),
        (
            "UPDATE",
            "alice",
            "acme",
            {"archive_after_days": 30},
            {"archive_after_days": None},
            ["archive_after_days"],
            cleared.headers["x-request-id"],
        ),
    ]  # fmt: skip  (a no-op patch records nothing)
    assert records(database_url, "globex", "tenant") == []


async def test_tenant_creation_is_recorded_in_the_platform_log(
    client: httpx.AsyncClient, platform_admin: dict[str, str], database_url: str
) -> None:
    created = await client.post(
        "/api/v1/tenants", json={"id": "initech", "name": "Initech", "retention_days": 30},
        headers=platform_admin,
    )  # fmt: skip
    assert created.status_code == 201
    *_, last = records(database_url, "platform", "tenant")
    assert last[:3] == ("CREATE", "root", "initech")
    assert last[4]["retention_days"] == 30
    with psycopg.connect(database_url) as conn:
        own = conn.execute("SELECT count(*) FROM events WHERE tenant_id = 'initech'").fetchone()
    assert own == (0,)  # the new tenant's log starts empty, at seq 0


async def test_a_legal_hold_is_set_recorded_and_shown(
    client: httpx.AsyncClient, make_token: TokenFactory, database_url: str
) -> None:
    admin = bearer(make_token("admin", "acme", sub="alice"))
    assert (await client.get("/api/v1/tenants/acme", headers=admin)).json()["legal_hold"] is False
    held = await client.patch("/api/v1/tenants/acme", json={"legal_hold": True}, headers=admin)
    assert held.status_code == 200, held.text
    assert held.json()["legal_hold"] is True
    assert (await client.get("/api/v1/tenants/acme", headers=admin)).json()["legal_hold"] is True
    [record] = records(database_url, "acme", "tenant")
    assert record[3:6] == ({"legal_hold": False}, {"legal_hold": True}, ["legal_hold"])


@pytest.mark.parametrize(
    "patch",
    [
        {"retention_days": 0},
        {"retention_days": None},
        {"name": None},
        {"name": ""},
        {"settings": None},
        {"settings": [1]},
        {"settings": {"big": "x" * 20_000}},
        {"id": "renamed"},
        {"system": True},
        {"legal_hold": None},
        {"legal_hold": "true"},
        {"legal_hold": 1},
    ],
)
async def test_invalid_patches_are_422_and_change_nothing(
    client: httpx.AsyncClient, make_token: TokenFactory, patch: dict[str, Any], database_url: str
) -> None:
    admin = bearer(make_token("admin", "acme"))
    response = await client.patch("/api/v1/tenants/acme", json=patch, headers=admin)
    assert response.status_code == 422, response.text
    assert records(database_url, "acme", "tenant") == []


async def test_the_platform_tenant_is_hidden_and_only_platform_admins_reach_it(
    client: httpx.AsyncClient, platform_admin: dict[str, str], make_token: TokenFactory,
    database_url: str,
) -> None:  # fmt: skip
    listed = await client.get("/api/v1/tenants", headers=platform_admin)
    assert [t["id"] for t in listed.json()] == ["acme", "globex"]
    assert (await client.get("/api/v1/tenants/platform", headers=platform_admin)).status_code == 200
    changed = await client.patch(
        "/api/v1/tenants/platform", json={"retention_days": 730}, headers=platform_admin
    )
    assert changed.json()["retention_days"] == 730
    assert records(database_url, "platform", "tenant")[-1][:3] == ("UPDATE", "root", "platform")
    taken = await client.post(
        "/api/v1/tenants", json={"id": "platform", "name": "Mine"}, headers=platform_admin
    )
    assert taken.status_code == 409
    write = await client.post(
        "/api/v1/logs", json={"action": "FORGE", "tenant_id": "platform"}, headers=platform_admin
    )
    assert write.status_code == 403  # the platform log is written by the service only
    keys = await client.post(
        "/api/v1/api-keys", json={"name": "x", "scopes": ["logs:write"], "tenant_id": "platform"},
        headers=platform_admin,
    )  # fmt: skip
    assert keys.status_code == 403

    sneaky = bearer(make_token("admin", "platform"))  # a token naming it opens nothing
    for response in (
        await client.get("/api/v1/tenants/platform", headers=sneaky),
        await client.get("/api/v1/api-keys", headers=sneaky),
    ):
        assert response.status_code == 404
    assert (await client.get("/api/v1/tenants", headers=sneaky)).json() == []


async def test_unknown_tenant_for_a_platform_admin_is_the_same_404(
    client: httpx.AsyncClient, platform_admin: dict[str, str], make_token: TokenFactory
) -> None:
    missing = await client.get("/api/v1/tenants/initech", headers=platform_admin)
    hidden = await client.get(
        "/api/v1/tenants/initech", headers=bearer(make_token("admin", "acme"))
    )
    assert missing.status_code == hidden.status_code == 404
    strip = ("request_id",)
    assert {k: v for k, v in missing.json().items() if k not in strip} == {
        k: v for k, v in hidden.json().items() if k not in strip
    }
    patched = await client.patch(
        "/api/v1/tenants/initech", json={"retention_days": 5}, headers=platform_admin
    )
    assert patched.status_code == 404
