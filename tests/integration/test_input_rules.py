"""What an outside probe sent (issue #16): each is a 4xx problem with a pointer, and stores
nothing; valid neighbours are not slowed or failed by it."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import TokenFactory, bearer

pytestmark = pytest.mark.usefixtures("tenants")

JSON = {"content-type": "application/json"}


@pytest.fixture
def acme(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("admin", "acme"))


def stored(database_url: str, where: str = "true") -> int:
    """Events in client tenants (the platform log records tenant creation and denials)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM events WHERE tenant_id <> 'platform' AND ({where})"  # noqa: S608
        ).fetchone()
    assert row is not None
    return int(row[0])


def pointers(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [e["pointer"] for e in response.json()["errors"]]


# -- 2. unpaired UTF-16 surrogates -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (rb'{"action": "LOGIN", "message": "a\ud800b"}', "/message"),
        (rb'{"action": "LOGIN", "metadata": {"\udc00": 1}}', "/metadata"),
        (rb'{"action": "LOGIN", "user_id": "\udfff"}', "/user_id"),
        (rb'{"action": "LOGIN", "after": {"a": [1, {"b": "\ud83d"}]}}', "/after/a/1/b"),
        (b'{"action": "LOGIN", "message": "a\xed\xa0\x80b"}', "/message"),  # UTF-8-encoded
    ],
)
async def test_a_lone_surrogate_in_an_event_is_a_422_pointing_at_it(
    client: httpx.AsyncClient, acme: dict[str, str], database_url: str, body: bytes, pointer: str
) -> None:
    response = await client.post("/api/v1/logs", content=body, headers={**acme, **JSON})

    assert response.status_code == 422, response.text
    assert pointers(response) == [pointer]
    assert stored(database_url) == 0


async def test_a_lone_surrogate_in_a_bulk_request_points_at_its_event(
    client: httpx.AsyncClient, acme: dict[str, str], database_url: str
) -> None:
    body = rb'{"events": [{"action": "A"}, {"action": "B", "metadata": {"k": ["\ud800"]}}]}'

    response = await client.post("/api/v1/logs/bulk", content=body, headers={**acme, **JSON})

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"pointer": "/events/1/metadata/k/0", "index": 1,
         "detail": "must not contain unpaired UTF-16 surrogates (RFC 7493)"},
    ]  # fmt: skip
    assert stored(database_url) == 0


async def test_a_surrogate_pair_is_one_character_and_is_stored(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    body = rb'{"action": "LOGIN", "message": "\ud83d\ude00", "metadata": {"\ud83d\ude00": 1}}'

    response = await client.post("/api/v1/logs", content=body, headers={**acme, **JSON})

    assert response.status_code == 201, response.text
    assert response.json()["message"] == "\U0001f600"
    assert response.json()["metadata"] == {"\U0001f600": 1}


@pytest.mark.parametrize(
    ("path", "method", "body", "pointer"),
    [
        ("/api/v1/tenants", "POST", rb'{"id": "initech", "name": "I\udc00"}', "/name"),
        ("/api/v1/tenants", "POST",
         rb'{"id": "initech", "name": "I", "settings": {"\ud800": 1}}', "/settings"),
        ("/api/v1/tenants/acme", "PATCH", rb'{"settings": {"a": {"b": "\ud800"}}}',
         "/settings/a/b"),
        ("/api/v1/api-keys", "POST", rb'{"name": "k\ud800", "scopes": ["logs:read"]}', "/name"),
    ],
)  # fmt: skip
async def test_a_lone_surrogate_in_tenants_and_keys_is_a_422_that_changes_nothing(
    client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    acme: dict[str, str],
    database_url: str,
    path: str,
    method: str,
    body: bytes,
    pointer: str,
) -> None:
    headers = platform_admin if path == "/api/v1/tenants" else acme
    response = await client.request(method, path, content=body, headers={**headers, **JSON})

    assert response.status_code == 422, response.text
    assert pointers(response) == [pointer]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM api_keys").fetchone() == (0,)
        assert conn.execute("SELECT id, settings FROM tenants ORDER BY id").fetchall() == [
            ("acme", {}), ("globex", {}), ("platform", {}),
        ]  # fmt: skip
    assert stored(database_url) == 0


def _segment(part: dict[str, Any]) -> str:
    raw = json.dumps(part).encode()  # ensure_ascii: a surrogate travels as its escape
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_a_refused_token_whose_header_holds_a_surrogate_or_nul_is_still_recorded(
    client: httpx.AsyncClient, database_url: str
) -> None:
    header = {"alg": "EdDSA", "typ": "JWT", "kid": "k\ud800\u0000"}
    token = f"{_segment(header)}.{_segment({'iss': 'x'})}.c2ln"

    response = await client.get("/api/v1/tenants", headers=bearer(token))

    assert response.status_code == 401
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT metadata FROM events WHERE tenant_id = 'platform' AND action = 'LOGIN'"
        ).fetchall()
    assert [r[0]["kid"] for r in rows] == ["k\\ud800\\x00"]
