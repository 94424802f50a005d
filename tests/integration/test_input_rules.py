"""What an outside probe sent (issue #16): each is a 4xx problem with a pointer, and stores
nothing; valid neighbours are not slowed or failed by it."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from auditline.api.errors import install_error_handlers
from auditline.api.middleware import EdgeMiddleware
from auditline.app import create_app
from auditline.config import Settings
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


# -- 4. what PostgreSQL would refuse is refused before the write path ---------------------


async def test_an_unstorable_event_of_another_tenant_leaves_a_shared_commit_whole(
    settings: Settings,
    make_token: TokenFactory,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ten valid writes of acme and one of globex that PostgreSQL's inet would refuse arrive
    while the flusher is busy, so all of them wait in the queue for one group. The bad one
    must be refused at the edge: in the group it failed the shared commit, and the writer
    retried every write of it in a transaction of its own."""
    caplog.set_level(logging.WARNING, logger="auditline.ingest.writer")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            root = bearer(make_token("admin", "*", sub="root"))
            for tenant in ("acme", "globex", "zeta"):
                created = await http.post(
                    "/api/v1/tenants", json={"id": tenant, "name": tenant}, headers=root
                )
                assert created.status_code in (201, 409), created.text
            writer = app.state.services.writer
            with psycopg.connect(database_url) as lock:
                # The flusher's first group (zeta's) waits for this lock on zeta's log head.
                lock.execute("SELECT 1 FROM tenant_log_heads WHERE tenant_id = 'zeta' FOR UPDATE")
                first = asyncio.create_task(
                    http.post("/api/v1/logs", json={"action": "HOLD", "tenant_id": "zeta"},
                              headers=root)
                )  # fmt: skip
                await _until(lambda: _busy_with_zeta(database_url))
                acme = bearer(make_token("user", "acme"))
                good = [
                    asyncio.create_task(
                        http.post("/api/v1/logs", json={"action": "OK", "user_id": f"u{i}"},
                                  headers=acme)
                    )
                    for i in range(10)
                ]  # fmt: skip
                bad = asyncio.create_task(
                    http.post(
                        "/api/v1/logs",
                        json={"action": "LOGIN", "ip_address": "fe80::1%eth0"},
                        headers=bearer(make_token("user", "globex")),
                    )
                )
                # The writer's queue, read directly: nothing public says a write is waiting.
                await _until(lambda: len(writer._queue) + bad.done() == 11)
                lock.commit()  # the first group commits; the next takes the whole queue
            responses = await asyncio.gather(first, *good, bad)
    *accepted, refused = responses
    assert [r.status_code for r in accepted] == [201] * 11
    with psycopg.connect(database_url) as conn:
        transactions = conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM events WHERE tenant_id = 'acme'"
        ).fetchone()
    assert transactions == (1,)  # one shared commit, not ten single ones
    assert "retrying singly" not in caplog.text
    assert refused.status_code == 422
    assert pointers(refused) == ["/ip_address"]
    assert stored(database_url, "tenant_id = 'globex'") == 0


async def _until(condition: Callable[[], bool]) -> None:
    """Poll *condition* (a state with no event to wait for) for up to ten seconds."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def _busy_with_zeta(database_url: str) -> bool:
    """Whether a backend is waiting for the lock this test holds on zeta's log head."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        ).fetchone()
    return row is not None and row[0] > 0


anything_text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()),
    max_size=6,
)
numbers = (
    st.integers(-(2**70), 2**70)
    | st.floats()
    | st.sampled_from([1e308, -1e308, 5e-324, -0.0, 2**53 - 1, 2**63, -(2**63) - 1])
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | anything_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(anything_text, inner, max_size=3),
    max_leaves=8,
)
addresses = (
    st.ip_addresses().map(str)
    | st.tuples(st.ip_addresses(v=6).map(str), st.text("abc019", min_size=1)).map("%".join)
    | st.sampled_from(["::ffff:10.0.0.1", "0:0::0", "10.0.0.256", "1.2.3.4/32"])
)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.timezones()
).map(datetime.isoformat) | st.sampled_from(
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
)
probe_events = st.fixed_dictionaries(
    {"action": st.sampled_from(["LOGIN", "UPDATE"])},
    optional={
        "timestamp": times,
        "ip_address": addresses,
        "user_id": anything_text,
        "resource_id": anything_text,
        "message": anything_text,
        "user_agent": anything_text,
        "metadata": st.dictionaries(anything_text, json_values, max_size=3),
        "before": st.dictionaries(anything_text, json_values, max_size=2),
        "after": st.dictionaries(anything_text, json_values, max_size=2),
    },
)


@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(event=probe_events)
async def test_every_event_is_stored_or_refused_with_pointers_never_by_postgresql(
    client: httpx.AsyncClient, acme: dict[str, str], event: dict[str, Any]
) -> None:
    body = json.dumps(event).encode()  # NaN and the infinities as JavaScript spells them

    response = await client.post("/api/v1/logs", content=body, headers={**acme, **JSON})

    assert response.status_code in (201, 422), response.text
    if response.status_code == 422:
        errors = response.json()["errors"]
        assert errors, response.text
        assert all("pointer" in e for e in errors), response.text


async def test_an_expiry_no_read_could_return_is_refused_and_the_keys_stay_listable(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    body = {"name": "k", "scopes": ["logs:read"], "expires_at": "9999-12-31T23:59:59-01:00"}

    created = await client.post("/api/v1/api-keys", json=body, headers=acme)

    assert created.status_code == 422, created.text
    assert pointers(created) == ["/expires_at"]
    listed = await client.get("/api/v1/api-keys", headers=acme)
    assert (listed.status_code, listed.json()) == (200, [])


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"start": "0001-01-01T00:00:00+01:00"}, "start"),
        ({"end": "9999-12-31T23:59:59-00:30"}, "end"),
        ({"ip_address": "fe80::1%eth0"}, "ip_address"),
        ({"ip_address": "fe80::1%eth0/64"}, "ip_address"),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/logs", "/api/v1/logs/stats", "/api/v1/logs/export"])
async def test_search_parameters_postgresql_would_refuse_are_a_422_naming_them(
    client: httpx.AsyncClient, acme: dict[str, str], path: str, query: dict[str, str],
    parameter: str,
) -> None:  # fmt: skip
    response = await client.get(path, params=query, headers=acme)

    assert response.status_code == 422, response.text
    assert [e["parameter"] for e in response.json()["errors"]] == [parameter]


async def test_a_zone_in_the_query_language_is_a_400(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    response = await client.get(
        "/api/v1/logs", params={"q": "ip_address:fe80::1%eth0"}, headers=acme
    )

    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["parameter"] == "q"


async def test_a_link_local_client_is_recorded_without_its_zone(
    settings: Settings, database_url: str
) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("fe80::1%eth0", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get("/api/v1/tenants", headers=bearer("not-a-token"))
    assert response.status_code == 401
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT host(ip_address) FROM events WHERE tenant_id = 'platform' AND action = 'LOGIN'"
        ).fetchall()
    assert rows == [("fe80::1",)]


# -- 5. no database text; tenant settings follow the rules of event metadata ------------


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


SETTINGS_CASES = [
    (b'{"n": 1e400}', "/settings/n", "must be a finite number"),
    (b'{"n": [9007199254740993]}', "/settings/n/0",
     "integer is outside the range -(2**53-1)..2**53-1"),
    (b'{"k": "a\\u0000"}', "/settings/k", "must not contain NUL characters"),
    (b'{"k\\u0000": 1}', "/settings/k\x00", "key must not contain NUL characters"),
    (b'{"big": "' + b"x" * 3_000_000 + b'"}', "/settings", "is larger than 16384 bytes"),
    (json.dumps(_nested(8)).encode(), "/settings" + "/a" * 8, "nests deeper than 7 levels"),
    (json.dumps({str(i): i for i in range(252)}).encode(), "/settings",
     "has more than 251 keys in total"),
]  # fmt: skip


@pytest.mark.parametrize(("document", "pointer", "detail"), SETTINGS_CASES)
async def test_tenant_settings_follow_the_json_rules_of_event_metadata(
    client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    acme: dict[str, str],
    database_url: str,
    document: bytes,
    pointer: str,
    detail: str,
) -> None:
    created = await client.post(
        "/api/v1/tenants",
        content=b'{"id": "initech", "name": "Initech", "settings": ' + document + b"}",
        headers={**platform_admin, **JSON},
    )
    patched = await client.patch(
        "/api/v1/tenants/acme", content=b'{"settings": ' + document + b"}", headers={**acme, **JSON}
    )

    for response in (created, patched):
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [{"pointer": pointer, "detail": detail}]
    with psycopg.connect(database_url) as conn:
        tenants = conn.execute("SELECT id, settings FROM tenants ORDER BY id").fetchall()
        records = conn.execute("SELECT count(*) FROM events WHERE resource_type = 'tenant'")
        assert records.fetchone() == (2,)  # acme's and globex's creation, nothing since
    assert tenants == [("acme", {}), ("globex", {}), ("platform", {})]


async def test_settings_at_the_limits_are_stored_and_recorded(
    client: httpx.AsyncClient, acme: dict[str, str], database_url: str
) -> None:
    # 35 + 35 * 6 + 6 = 251 keys, 7 levels (256 less one for each updatable tenant field)
    settings: dict[str, Any] = {str(i): _nested(6) for i in range(35)}
    settings |= {f"flat-{i}": i for i in range(6)}

    patched = await client.patch("/api/v1/tenants/acme", json={"settings": settings}, headers=acme)

    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"] == settings
    with psycopg.connect(database_url) as conn:
        record = conn.execute(
            "SELECT after FROM events WHERE tenant_id = 'acme' AND action = 'UPDATE'"
        ).fetchone()
    assert record == ({"settings": settings},)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/tenants", {"id": "initech", "name": "Init\u0000ech"}),
        ("/api/v1/api-keys", {"name": "k\u0000", "scopes": ["logs:read"]}),
    ],
)
async def test_a_nul_in_a_name_is_refused_at_the_edge_with_a_pointer(
    client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    acme: dict[str, str],
    path: str,
    body: dict[str, Any],
) -> None:
    headers = platform_admin if path == "/api/v1/tenants" else acme

    response = await client.post(path, json=body, headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"pointer": "/name", "detail": "must not contain control characters or line breaks"}
    ]


async def test_a_database_refusal_reaches_the_client_without_the_databases_words(
    database_url: str,
) -> None:
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.DataError) as caught:
        conn.execute("SELECT 'fe80::1%eth0'::inet")
    refusal = caught.value
    assert "inet" in (refusal.diag.message_primary or "")
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/gap")
    async def gap() -> None:  # a value the edge let through, as a future bug might
        raise refusal

    app.add_middleware(EdgeMiddleware, max_body_bytes=1024, body_timeout=5)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/gap", headers={"X-Request-ID": "req-16-5"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["request_id"] == "req-16-5"
    for word in ("inet", "syntax", "fe80", "PostgreSQL"):
        assert word not in response.text


# -- 6. repeated keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "pointer"),
    [
        ("POST", "/api/v1/logs", b'{"action": "CREATE", "action": "DELETE"}', "/action"),
        ("POST", "/api/v1/logs", b'{"action": "A", "tenant_id": "acme", "tenant_id": "globex"}',
         "/tenant_id"),
        ("POST", "/api/v1/logs", b'{"action": "A", "metadata": {"a": {"b": 1,\n "b" : 1}}}',
         "/metadata/a/b"),
        ("POST", "/api/v1/logs/bulk",
         b'{"events": [{"action": "A"}, {"action": "B", "after": {"k": 1, "k": 2}}]}',
         "/events/1/after/k"),
        ("POST", "/api/v1/logs/bulk", b'{"events": [{"action": "A"}], "events": [{"action": "B"}]}',
         "/events"),
        ("POST", "/api/v1/tenants", b'{"id": "initech", "id": "acme2", "name": "I"}', "/id"),
        ("PATCH", "/api/v1/tenants/acme", b'{"settings": {"a": 1, "a": 2}}', "/settings/a"),
        ("POST", "/api/v1/api-keys",
         b'{"name": "k", "scopes": ["logs:read"], "scopes": ["logs:write"]}', "/scopes"),
    ],
)  # fmt: skip
async def test_a_repeated_key_is_a_422_pointing_at_it_and_changes_nothing(
    client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    database_url: str,
    method: str,
    path: str,
    body: bytes,
    pointer: str,
) -> None:
    response = await client.request(method, path, content=body, headers={**platform_admin, **JSON})

    assert response.status_code == 422, response.text
    assert pointers(response) == [pointer]
    assert response.json()["errors"][0]["detail"].startswith("repeats a key")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM api_keys").fetchone() == (0,)
        assert conn.execute("SELECT id, settings FROM tenants ORDER BY id").fetchall() == [
            ("acme", {}), ("globex", {}), ("platform", {}),
        ]  # fmt: skip
    assert stored(database_url) == 0


# -- 8. leniency the docs never promised -------------------------------------------------


@pytest.mark.parametrize(
    "field", ["user_id", "session_id", "resource_type", "resource_id", "request_id"]
)
@pytest.mark.parametrize("text", ["alice\r\nseverity=INFO", "bob\n", "\u0085x", "a\u2028b"])
async def test_an_identifier_with_a_control_character_is_a_422(
    client: httpx.AsyncClient, acme: dict[str, str], database_url: str, field: str, text: str
) -> None:
    single = await client.post("/api/v1/logs", json={"action": "A", field: text}, headers=acme)
    bulk = await client.post(
        "/api/v1/logs/bulk", json={"events": [{"action": "A"}, {"action": "A", field: text}]},
        headers=acme,
    )  # fmt: skip
    search = await client.get("/api/v1/logs", params={field: text}, headers=acme)

    assert single.status_code == bulk.status_code == search.status_code == 422
    assert pointers(single) == [f"/{field}"]
    assert pointers(bulk) == [f"/events/1/{field}"]
    assert [e["parameter"] for e in search.json()["errors"]] == [field]
    assert stored(database_url) == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/tenants", {"id": "initech", "name": "Initech\nAdmin: yes"}),
        ("/api/v1/api-keys", {"name": "billing\r\n", "scopes": ["logs:read"]}),
    ],
)
async def test_a_name_with_a_line_break_is_a_422(
    client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    acme: dict[str, str],
    path: str,
    body: dict[str, Any],
) -> None:
    headers = platform_admin if path == "/api/v1/tenants" else acme

    response = await client.post(path, json=body, headers=headers)

    assert response.status_code == 422, response.text
    assert pointers(response) == ["/name"]


@pytest.mark.parametrize("value", [1764492900, "1764492900", 1764492900.5, "2026-11-30 09:15:00Z",
                                   "2026-11-30T09:15Z", "2026-11-30T09:15:00+0100"])  # fmt: skip
async def test_only_rfc3339_is_a_time_in_bodies_and_parameters(
    client: httpx.AsyncClient, acme: dict[str, str], database_url: str, value: Any
) -> None:
    event = await client.post(
        "/api/v1/logs", json={"action": "A", "timestamp": value}, headers=acme
    )
    bulk = await client.post(
        "/api/v1/logs/bulk", json={"events": [{"action": "A", "timestamp": value}]}, headers=acme
    )
    key = await client.post(
        "/api/v1/api-keys",
        json={"name": "k", "scopes": ["logs:read"], "expires_at": value},
        headers=acme,
    )
    searches = [
        await client.get(path, params={"start": str(value)}, headers=acme)
        for path in ("/api/v1/logs", "/api/v1/logs/export", "/api/v1/logs/stats")
    ]

    assert [event.status_code, bulk.status_code, key.status_code] == [422] * 3
    assert pointers(event) == ["/timestamp"]
    assert pointers(bulk) == ["/events/0/timestamp"]
    assert pointers(key) == ["/expires_at"]
    for search in searches:
        assert search.status_code == 422, search.text
        assert [e["parameter"] for e in search.json()["errors"]] == ["start"]
    assert stored(database_url) == 0


async def test_a_time_without_seconds_in_the_query_language_is_a_400(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    response = await client.get(
        "/api/v1/logs", params={"q": "timestamp>2026-11-30T09:15Z"}, headers=acme
    )

    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["parameter"] == "q"


@pytest.mark.parametrize("value", [True, "30", 30.0])
@pytest.mark.parametrize("field", ["retention_days", "archive_after_days"])
async def test_a_number_of_days_is_a_json_integer(
    client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    acme: dict[str, str],
    database_url: str,
    field: str,
    value: Any,
) -> None:
    created = await client.post(
        "/api/v1/tenants", json={"id": "initech", "name": "I", field: value}, headers=platform_admin
    )
    patched = await client.patch("/api/v1/tenants/acme", json={field: value}, headers=acme)

    for response in (created, patched):
        assert response.status_code == 422, response.text
        assert pointers(response) == [f"/{field}"]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id, retention_days, archive_after_days FROM tenants ORDER BY id"
        )
        assert [r[:3] for r in rows.fetchall()] == [
            ("acme", 90, None), ("globex", 90, None), ("platform", 365, None),
        ]  # fmt: skip


@pytest.mark.parametrize("value", [True, 167772161])
async def test_an_address_is_text_not_a_number(
    client: httpx.AsyncClient, acme: dict[str, str], database_url: str, value: Any
) -> None:
    response = await client.post(
        "/api/v1/logs", json={"action": "LOGIN", "ip_address": value}, headers=acme
    )

    assert response.status_code == 422, response.text
    assert pointers(response) == ["/ip_address"]
    assert stored(database_url) == 0


NOT_JSON_IN_UTF8 = [
    (None, b'{"action": "LOGIN"}'),
    ("text/plain", b'{"action": "LOGIN"}'),
    ("application/x-www-form-urlencoded", b"action=LOGIN"),
    (
        "multipart/form-data; boundary=x",
        b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1',
    ),
    ("application/xml", b"<action>LOGIN</action>"),
    ("application/json; charset=utf-16", '{"action": "LOGIN"}'.encode("utf-16")),
    ("application/json; charset=iso-8859-1", b'{"action": "LOGIN"}'),
    ("application/json", '{"action": "LOGIN"}'.encode("utf-16")),
    ("application/json", '{"action": "LOGIN"}'.encode("utf-32")),
    ("application/json", b'{"action": "LOGIN", "message": "caf\xe9"}'),
    ("application/json", b'{"action": "LOGIN", "message": "a\xed\xa0\x80b"}'),  # a surrogate
]


@pytest.mark.parametrize(("content_type", "body"), NOT_JSON_IN_UTF8)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/logs"),
        ("POST", "/api/v1/logs/bulk"),
        ("POST", "/api/v1/tenants"),
        ("PATCH", "/api/v1/tenants/acme"),
        ("POST", "/api/v1/api-keys"),
    ],
)
async def test_a_body_that_is_not_json_in_utf8_is_a_415(
    client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    database_url: str,
    method: str,
    path: str,
    content_type: str | None,
    body: bytes,
) -> None:
    headers = {**platform_admin, **({"content-type": content_type} if content_type else {})}

    response = await client.request(method, path, content=body, headers=headers)

    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 415
    assert stored(database_url) == 0


async def test_utf16_without_a_byte_order_mark_is_not_json_either(
    client: httpx.AsyncClient, acme: dict[str, str], database_url: str
) -> None:
    body = '{"action": "LOGIN"}'.encode("utf-16-le")  # valid UTF-8, holding NULs

    response = await client.post("/api/v1/logs", content=body, headers={**acme, **JSON})

    assert response.status_code == 422, response.text
    assert stored(database_url) == 0


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=UTF-8", 'application/json;charset="utf-8"',
     "application/merge-patch+json"],
)  # fmt: skip
async def test_json_in_utf8_is_read_whatever_the_content_type_says_besides(
    client: httpx.AsyncClient, acme: dict[str, str], content_type: str
) -> None:
    response = await client.post(
        "/api/v1/logs",
        content=b'{"action": "LOGIN"}',
        headers={**acme, "content-type": content_type},
    )

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("same_contents", [False, True])
async def test_an_id_sent_twice_in_one_bulk_request_is_a_422_naming_both_events(
    client: httpx.AsyncClient, acme: dict[str, str], database_url: str, same_contents: bool
) -> None:
    twice = "0b7c3a1e-6a55-4a43-9b9e-7d8c1f7e2a10"
    second = {"action": "CREATE"} if same_contents else {"action": "DELETE"}
    batch = [{"action": "READ"}, {"action": "CREATE", "id": twice}, {"action": "READ"},
             {**second, "id": twice}]  # fmt: skip

    response = await client.post("/api/v1/logs/bulk", json={"events": batch}, headers=acme)

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"pointer": "/events/3/id", "index": 3,
         "detail": "is also the id of event 1: ids must be unique"},
    ]  # fmt: skip
    assert stored(database_url) == 0
