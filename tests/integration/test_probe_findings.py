"""What an outside probe found at the API's edge: answers that disclosed, ignored or
misrouted. Each test failed before its fix."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest

from tests.conftest import TokenFactory, bearer
from tests.integration.test_api_keys import create_key

pytestmark = pytest.mark.usefixtures("tenants")


@pytest.fixture
def admin(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("admin", "acme", sub="alice-admin"))


def _views(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM events WHERE resource_type = 'audit_log' AND action = 'VIEW'"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("caller", ["write-only key", "another user"])
async def test_an_idempotent_retry_discloses_nothing_the_caller_could_not_read(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_token: TokenFactory,
    database_url: str,
    caller: str,
) -> None:
    secret = {"action": "UPDATE", "user_id": "alice", "message": "salary of bob: 90k",
              "metadata": {"grade": "E7"}}  # fmt: skip
    created = await client.post("/api/v1/logs", json=secret, headers=admin)
    assert created.status_code == 201
    stored = created.json()
    if caller == "write-only key":
        headers = bearer((await create_key(client, admin, "logs:write"))["key"])
    else:  # a user reads only their own events: alice's is a 404 to mallory
        headers = bearer(make_token("user", "acme", sub="mallory"))
    cannot = await client.get(f"/api/v1/logs/{stored['id']}", headers=headers)
    assert cannot.status_code in (403, 404)
    views = _views(database_url)

    retry = await client.post(
        "/api/v1/logs", json={"id": stored["id"], "action": "READ"}, headers=headers
    )
    assert retry.status_code == 200
    assert retry.json() == {"id": stored["id"], "seq": stored["seq"], "duplicate": True}
    assert "salary" not in retry.text
    assert _views(database_url) == views  # no read happened, so none is recorded


async def test_the_tenant_parameter_of_a_single_write_is_honoured(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    one = bearer(make_token("user", "acme"))
    # Before: written to acme, the only tenant of the token, whatever the parameter said.
    other = await client.post(
        "/api/v1/logs", params={"tenant_id": "globex"}, json={"action": "READ"}, headers=one
    )
    assert other.status_code == 404
    both = bearer(make_token("user", "acme", "globex"))
    # Before: "tenant_id is required" (422), the parameter ignored.
    named = await client.post(
        "/api/v1/logs", params={"tenant_id": "globex"}, json={"action": "READ"}, headers=both
    )
    assert named.status_code == 201, named.text
    assert named.json()["tenant_id"] == "globex"
    clash = await client.post(
        "/api/v1/logs",
        params={"tenant_id": "globex"},
        json={"action": "READ", "tenant_id": "acme"},
        headers=both,
    )
    assert clash.status_code == 422
    assert clash.json()["errors"] == [
        {"pointer": "/tenant_id", "detail": "differs from the tenant_id parameter"}
    ]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/logs", {"action": "READ"}),
        ("POST", "/api/v1/logs/bulk", {"events": [{"action": "READ"}]}),
        ("GET", "/api/v1/logs/00000000-0000-7000-8000-000000000000", None),
        ("GET", "/api/v1/tenants/acme", None),
        ("GET", "/api/v1/api-keys", None),
    ],
)
async def test_unknown_query_parameters_are_refused_everywhere(
    client: httpx.AsyncClient, admin: dict[str, str], method: str, path: str, body: object
) -> None:
    response = await client.request(
        method, path, params={"tenantid": "acme"}, json=body, headers=admin
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"detail": "Extra inputs are not permitted", "parameter": "tenantid", "in": "query"}
    ]
    # Authentication still answers first.
    anonymous = await client.request(method, path, params={"tenantid": "acme"}, json=body)
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/v1/logs/purge"),  # before: 405, taken for /logs/{event_id}
        ("GET", "/api/v1/logs/stream"),  # before: 422 "event_id: Input should be a valid UUID"
        ("GET", "/api/v1/logs/not-an-id"),
        ("PUT", "/api/v1/nothing-here"),
    ],
)
async def test_routes_that_do_not_exist_answer_404(
    client: httpx.AsyncClient, admin: dict[str, str], method: str, path: str
) -> None:
    response = await client.request(method, path, headers=admin)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    # A route that exists with another method is still a 405.
    assert (await client.delete(f"/api/v1/logs/{uuid.uuid4()}", headers=admin)).status_code == 405
