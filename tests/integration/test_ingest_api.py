"""Ingest and read-back over HTTP against a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import psycopg
import pytest

from auditline.domain.events import Event
from auditline.domain.tenants import TenantId
from auditline.integrity.leaf import leaf_hash
from tests.conftest import TokenFactory, bearer

pytestmark = pytest.mark.usefixtures("tenants")


def event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": "UPDATE",
        "user_id": "alice",
        "actor_type": "user",
        "session_id": "s-1",
        "resource_type": "order",
        "resource_id": "o-42",
        "ip_address": "2001:db8::1",
        "user_agent": "curl/8.0",
        "severity": "WARNING",
        "message": "order total changed",
        "request_id": "req-1",
        "outcome": "success",
        "metadata": {"region": "eu", "items": [1, 2]},
        "before": {"total": 10, "status": "open"},
        "after": {"total": 12, "status": "open"},
    }
    body.update(overrides)
    return body


@pytest.fixture
def acme_writer(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("user", "acme", sub="svc-acme"))


@pytest.fixture
def acme_admin(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("admin", "acme"))


async def test_created_event_reads_back_exactly(
    client: httpx.AsyncClient, acme_admin: dict[str, str]
) -> None:
    ts = "2026-11-30T09:15:00.123456+02:00"
    created = await client.post("/api/v1/logs", json=event(timestamp=ts), headers=acme_admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["tenant_id"] == "acme"
    assert uuid.UUID(body["id"]).version == 7
    assert body["seq"] == 0
    assert datetime.fromisoformat(body["timestamp"]) == datetime.fromisoformat(ts)
    assert body["changed_fields"] == ["total"]
    assert body["ip_address"] == "2001:db8::1"

    fetched = await client.get(f"/api/v1/logs/{body['id']}", headers=acme_admin)
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_stored_leaf_hash_matches_a_recomputation_from_the_stored_row(
    client: httpx.AsyncClient, acme_admin: dict[str, str]
) -> None:
    created = (await client.post("/api/v1/logs", json=event(), headers=acme_admin)).json()
    fetched = (await client.get(f"/api/v1/logs/{created['id']}", headers=acme_admin)).json()
    copied = ("action", "severity", "metadata", "user_id", "actor_type", "session_id",
              "resource_type", "resource_id", "ip_address", "user_agent", "before", "after",
              "changed_fields", "message", "request_id", "outcome")  # fmt: skip
    rebuilt = Event(
        tenant_id=TenantId(fetched["tenant_id"]),
        id=uuid.UUID(fetched["id"]),
        timestamp=datetime.fromisoformat(fetched["timestamp"]),
        received_at=datetime.fromisoformat(fetched["received_at"]),
        leaf_hash=b"",
        **{k: fetched[k] for k in copied},
    )
    assert leaf_hash(rebuilt).hex() == fetched["leaf_hash"]


async def test_sequence_numbers_are_gap_free_per_tenant(
    client: httpx.AsyncClient, acme_admin: dict[str, str], make_token: TokenFactory
) -> None:
    globex = bearer(make_token("admin", "globex"))
    seqs = []
    for _ in range(3):
        seqs.append((await client.post("/api/v1/logs", json=event(), headers=acme_admin)).json())
    other = (await client.post("/api/v1/logs", json=event(), headers=globex)).json()
    bad = await client.post("/api/v1/logs", json=event(action="bad"), headers=acme_admin)
    assert bad.status_code == 422
    after = (await client.post("/api/v1/logs", json=event(), headers=acme_admin)).json()
    assert [e["seq"] for e in seqs] + [after["seq"]] == [0, 1, 2, 3]
    assert other["seq"] == 0


async def test_retry_with_same_id_is_not_stored_twice(
    client: httpx.AsyncClient, acme_admin: dict[str, str], database_url: str
) -> None:
    event_id = str(uuid.uuid4())
    first = await client.post("/api/v1/logs", json=event(id=event_id), headers=acme_admin)
    second = await client.post(
        "/api/v1/logs", json=event(id=event_id, message="changed on retry"), headers=acme_admin
    )
    assert (first.status_code, second.status_code) == (201, 200)
    # Where the stored event is, not what it says (the retrying caller may not read it).
    assert second.json() == {"id": event_id, "seq": first.json()["seq"], "duplicate": True}
    with psycopg.connect(database_url) as conn:
        count = conn.execute("SELECT count(*) FROM events WHERE id = %s", (event_id,)).fetchone()
    assert count == (1,)
    read = await client.get(f"/api/v1/logs/{event_id}", headers=acme_admin)
    assert read.json() == first.json()  # the original is kept, not the retry's content


async def test_same_id_in_another_tenant_is_a_different_event(
    client: httpx.AsyncClient, acme_admin: dict[str, str], make_token: TokenFactory
) -> None:
    event_id = str(uuid.uuid4())
    globex = bearer(make_token("admin", "globex"))
    a = await client.post("/api/v1/logs", json=event(id=event_id), headers=acme_admin)
    g = await client.post("/api/v1/logs", json=event(id=event_id), headers=globex)
    assert (a.status_code, g.status_code) == (201, 201)
    assert (a.json()["tenant_id"], g.json()["tenant_id"]) == ("acme", "globex")


async def test_other_tenants_event_is_404_exactly_like_a_missing_one(
    client: httpx.AsyncClient, acme_admin: dict[str, str], make_token: TokenFactory
) -> None:
    globex = bearer(make_token("admin", "globex"))
    created = (await client.post("/api/v1/logs", json=event(), headers=globex)).json()
    foreign = await client.get(f"/api/v1/logs/{created['id']}", headers=acme_admin)
    missing_id = uuid.uuid4()
    missing = await client.get(f"/api/v1/logs/{missing_id}", headers=acme_admin)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.headers["content-type"] == "application/problem+json"

    def scrub(body: dict[str, Any], event_id: str) -> dict[str, Any]:
        return {k: str(v).replace(event_id, "ID") for k, v in body.items() if k != "request_id"}

    assert scrub(foreign.json(), created["id"]) == scrub(missing.json(), str(missing_id))


async def test_user_reads_only_events_they_performed(
    client: httpx.AsyncClient, acme_admin: dict[str, str], make_token: TokenFactory
) -> None:
    bob = bearer(make_token("user", "acme", sub="bob"))
    own = (await client.post("/api/v1/logs", json=event(user_id="bob"), headers=bob)).json()
    other = await client.post("/api/v1/logs", json=event(user_id="carol"), headers=acme_admin)
    assert (await client.get(f"/api/v1/logs/{own['id']}", headers=bob)).status_code == 200
    response = await client.get(f"/api/v1/logs/{other.json()['id']}", headers=bob)
    assert response.status_code == 404


async def test_auditor_may_read_but_not_write(
    client: httpx.AsyncClient, acme_admin: dict[str, str], make_token: TokenFactory
) -> None:
    auditor = bearer(make_token("auditor", "acme"))
    created = (await client.post("/api/v1/logs", json=event(), headers=acme_admin)).json()
    assert (await client.get(f"/api/v1/logs/{created['id']}", headers=auditor)).status_code == 200
    denied = await client.post("/api/v1/logs", json=event(), headers=auditor)
    assert denied.status_code == 403
    assert denied.json()["type"].endswith("/forbidden")


async def test_body_tenant_the_caller_may_not_write_is_404_and_not_stored(
    client: httpx.AsyncClient, acme_admin: dict[str, str], database_url: str
) -> None:
    response = await client.post("/api/v1/logs", json=event(tenant_id="globex"), headers=acme_admin)
    assert response.status_code == 404
    with psycopg.connect(database_url) as conn:
        assert conn.execute(  # the platform log records the tenants' creation
            "SELECT count(*) FROM events WHERE tenant_id <> 'platform'"
        ).fetchone() == (0,)


async def test_unknown_tenant_is_a_clear_404_not_a_silent_create(
    client: httpx.AsyncClient, platform_admin: dict[str, str], database_url: str
) -> None:
    response = await client.post(
        "/api/v1/logs", json=event(tenant_id="initech"), headers=platform_admin
    )
    assert response.status_code == 404
    assert "initech" in response.json()["detail"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM tenants WHERE id = 'initech'").fetchone() == (0,)


async def test_several_tenants_need_an_explicit_tenant_id(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    both = bearer(make_token("admin", "acme", "globex"))
    missing = await client.post("/api/v1/logs", json=event(), headers=both)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["parameter"] == "tenant_id"
    named = await client.post("/api/v1/logs", json=event(tenant_id="globex"), headers=both)
    assert named.status_code == 201
    assert named.json()["tenant_id"] == "globex"


@pytest.mark.parametrize(
    ("override", "pointer"),
    [
        ({"timestamp": "2026-11-30T09:00:00"}, "/timestamp"),
        ({"timestamp": "yesterday"}, "/timestamp"),
        ({"action": "delete"}, "/action"),
        ({"ip_address": "999.1.1.1"}, "/ip_address"),
        ({"severity": "DEBUG"}, "/severity"),
        ({"surprise": 1}, "/surprise"),
        ({"metadata": [1, 2]}, "/metadata"),
        ({"id": "not-a-uuid"}, "/id"),
        ({"actor_type": "robot"}, "/actor_type"),
    ],
)
async def test_invalid_field_is_a_problem_pointing_at_it(
    client: httpx.AsyncClient,
    acme_admin: dict[str, str],
    override: dict[str, Any],
    pointer: str,
    database_url: str,
) -> None:
    response = await client.post("/api/v1/logs", json=event(**override), headers=acme_admin)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert pointer in [e["pointer"] for e in problem["errors"]]
    with psycopg.connect(database_url) as conn:
        assert conn.execute(  # the platform log records the tenants' creation
            "SELECT count(*) FROM events WHERE tenant_id <> 'platform'"
        ).fetchone() == (0,)


async def test_limits_reject_future_old_oversized_and_nul_values(
    client: httpx.AsyncClient, acme_admin: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    cases = {
        "/timestamp": {"timestamp": (now + timedelta(minutes=6)).isoformat()},
        "/message": {"message": "x" * 9000},
        "/user_agent": {"user_agent": "a\x00b"},
        "/metadata/a/b/c/d/e/f/g/h/i": {
            "metadata": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": 1}}}}}}}}}}
        },
        "/metadata/big": {"metadata": {"big": 2**60}},
    }
    for pointer, override in cases.items():
        response = await client.post("/api/v1/logs", json=event(**override), headers=acme_admin)
        assert response.status_code == 422, pointer
        assert pointer in [e["pointer"] for e in response.json()["errors"]], response.text
    old_but_fine = (now - timedelta(days=400)).astimezone(timezone(timedelta(hours=-5)))
    response = await client.post(
        "/api/v1/logs", json=event(timestamp=old_but_fine.isoformat()), headers=acme_admin
    )
    assert response.status_code == 201, response.text


async def test_secrets_and_pii_are_masked_before_storage(
    client: httpx.AsyncClient, acme_admin: dict[str, str], database_url: str
) -> None:
    body = event(
        message="reset for jane.doe@example.com, card 4111 1111 1111 1111",
        metadata={"api_key": "sk_live_abc", "note": "Authorization: Bearer Zm9vOmJhcg-9x_Tk"},
        before={"password": "hunter2", "name": "Jane"},
        after={"password": "correct horse", "name": "Jane"},
    )
    created = (await client.post("/api/v1/logs", json=body, headers=acme_admin)).json()
    assert created["changed_fields"] == ["password"]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT message, metadata::text, before::text, after::text FROM events"
            " WHERE tenant_id = 'acme'"
        ).fetchone()
    stored = " ".join(str(v) for v in row or ())
    for secret in ("jane.doe@example.com", "4111 1111 1111 1111", "sk_live_abc", "hunter2",
                   "correct horse", "Zm9vOmJhcg-9x_Tk"):  # fmt: skip
        assert secret not in stored
    assert "Jane" in stored


async def test_request_without_valid_token_is_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eA=="}):
        response = await client.post("/api/v1/logs", json=event(), headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"


async def test_expired_token_is_401(client: httpx.AsyncClient, make_token: TokenFactory) -> None:
    expired = bearer(make_token("admin", "acme", ttl=-120))
    response = await client.post("/api/v1/logs", json=event(), headers=expired)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_reading_an_event_is_itself_recorded_in_the_tenants_log(
    client: httpx.AsyncClient, acme_admin: dict[str, str], make_token: TokenFactory,
    database_url: str,
) -> None:  # fmt: skip
    auditor = bearer(make_token("auditor", "acme", sub="auditor-7"))
    created = (await client.post("/api/v1/logs", json=event(), headers=acme_admin)).json()
    await client.get(f"/api/v1/logs/{created['id']}", headers=auditor)
    await client.get(f"/api/v1/logs/{uuid.uuid4()}", headers=auditor)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT tenant_id, user_id, action, resource_type, resource_id, outcome, seq"
            " FROM events WHERE resource_type = 'audit_log' ORDER BY seq"
        ).fetchall()
    assert rows[0][:6] == (
        "acme", "auditor-7", "VIEW", "audit_log", created["id"], "success",
    )  # fmt: skip
    assert [r[5] for r in rows] == ["success", "failure"]
    assert rows[0][6] == created["seq"] + 1
