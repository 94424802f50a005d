"""Values the schemas accept but PostgreSQL cannot hold are a 422 that changes nothing."""

from __future__ import annotations

import httpx
import psycopg

from tests.conftest import TokenFactory, bearer


async def test_nul_in_tenant_fields_is_a_422_and_stores_nothing(
    client: httpx.AsyncClient, platform_admin: dict[str, str], database_url: str
) -> None:
    for body in (
        {"id": "acme", "name": "Acme\u0000"},
        {"id": "acme", "name": "Acme", "settings": {"note": "a\u0000b"}},
    ):
        response = await client.post("/api/v1/tenants", json=body, headers=platform_admin)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM tenants WHERE id = 'acme'").fetchone() == (0,)


async def test_nul_in_a_settings_key_is_a_422_and_keeps_the_old_settings(
    client: httpx.AsyncClient, platform_admin: dict[str, str], make_token: TokenFactory
) -> None:
    created = await client.post(
        "/api/v1/tenants",
        json={"id": "acme", "name": "Acme", "settings": {"a": 1}},
        headers=platform_admin,
    )
    assert created.status_code == 201
    admin = bearer(make_token("admin", "acme"))
    patched = await client.patch(
        "/api/v1/tenants/acme", json={"settings": {"k\u0000": 1}}, headers=admin
    )
    assert patched.status_code == 422, patched.text
    assert (await client.get("/api/v1/tenants/acme", headers=admin)).json()["settings"] == {"a": 1}
