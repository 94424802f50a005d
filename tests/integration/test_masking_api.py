"""Per-tenant masking through the API: a tenant admin turns pseudonymisation on, a changed
address stays visible as a change without being revealed, tenants and defaults stay apart,
and the key behind the pseudonyms never leaves the database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest

from auditline.app import create_app
from auditline.config import Settings
from tests.conftest import TokenFactory, bearer

pytestmark = pytest.mark.usefixtures("tenants")

ANN, BOB = "ann@example.com", "bob@example.com"
PSEUDONYM = re.compile(r"\[EMAIL:([0-9a-f]{12})\]")
PSEUDONYMISE = {"settings": {"masking": {"email": "pseudonymise"}}}


def key_of(database_url: str, tenant: str) -> bytes:
    with psycopg.connect(database_url) as conn:  # the test server's superuser: no RLS
        row = conn.execute(
            "SELECT pseudonym_key FROM tenant_secrets WHERE tenant_id = %s", (tenant,)
        ).fetchone()
    assert row is not None
    return bytes(row[0])


def expected_pseudonym(key: bytes, address: str) -> str:
    digest = hmac.new(key, b"EMAIL\x00" + address.encode(), hashlib.sha256).hexdigest()
    return f"[EMAIL:{digest[:12]}]"


def change(old: str, new: str) -> dict[str, Any]:
    return {
        "action": "UPDATE", "resource_type": "user", "resource_id": "u-1",
        "message": f"e-mail changed from {old} to {new}",
        "before": {"email": old, "plan": "pro"}, "after": {"email": new, "plan": "pro"},
    }  # fmt: skip


async def post_and_read(
    http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    created = await http.post("/api/v1/logs", json=body, headers=headers)
    assert created.status_code == 201, created.text
    read = await http.get(f"/api/v1/logs/{created.json()['id']}", headers=headers)
    assert read.status_code == 200, read.text
    assert read.json() == created.json()
    return dict(read.json())


async def test_a_changed_address_reads_as_two_pseudonyms_and_is_never_stored(
    client: httpx.AsyncClient, make_token: TokenFactory, database_url: str
) -> None:
    acme = bearer(make_token("admin", "acme"))
    # Before the change: today's masking (and acme's default rules are now cached here).
    redacted = await post_and_read(client, acme, change(ANN, BOB))
    assert (redacted["before"]["email"], redacted["after"]["email"]) == ("[EMAIL]", "[EMAIL]")

    patched = await client.patch("/api/v1/tenants/acme", json=PSEUDONYMISE, headers=acme)
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"] == PSEUDONYMISE["settings"]

    event = await post_and_read(client, acme, change(ANN, BOB))

    assert event["changed_fields"] == ["email"]
    before, after = event["before"]["email"], event["after"]["email"]
    assert PSEUDONYM.fullmatch(before)
    assert PSEUDONYM.fullmatch(after)
    assert before != after
    key = key_of(database_url, "acme")
    assert (before, after) == (expected_pseudonym(key, ANN), expected_pseudonym(key, BOB))
    assert event["message"] == f"e-mail changed from {before} to {after}"
    assert event["before"]["plan"] == event["after"]["plan"] == "pro"
    again = await post_and_read(client, acme, change(ANN.upper(), "carol@example.com"))
    assert again["before"]["email"] == before  # one mailbox, one pseudonym, across events
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT count(*) FROM events WHERE tenant_id = 'acme'").fetchone()
        leaked = conn.execute(
            """SELECT count(*) FROM events
                WHERE lower(to_jsonb(events)::text) LIKE ANY (ARRAY['%ann@%', '%bob@%'])"""
        ).fetchone()
    assert stored is not None
    assert stored[0] >= 4  # the three events and the settings change record
    assert leaked == (0,)


async def test_tenants_pseudonymise_alike_values_differently_and_defaults_stay(
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    platform_admin: dict[str, str],
    database_url: str,
) -> None:
    acme = bearer(make_token("admin", "acme"))
    globex = bearer(make_token("admin", "globex"))
    for tenant, headers in (("acme", acme), ("globex", globex)):
        response = await client.patch(
            f"/api/v1/tenants/{tenant}", json=PSEUDONYMISE, headers=headers
        )
        assert response.status_code == 200
    created = await client.post(
        "/api/v1/tenants", json={"id": "initech", "name": "Initech"}, headers=platform_admin
    )
    assert created.status_code == 201
    initech = bearer(make_token("admin", "initech"))

    mine = await post_and_read(client, acme, change(ANN, BOB))
    theirs = await post_and_read(client, globex, change(ANN, BOB))
    plain = await post_and_read(client, initech, change(ANN, BOB))

    assert mine["before"]["email"] != theirs["before"]["email"]
    assert theirs["before"]["email"] == expected_pseudonym(key_of(database_url, "globex"), ANN)
    assert key_of(database_url, "acme") != key_of(database_url, "globex")
    assert (plain["before"]["email"], plain["after"]["email"]) == ("[EMAIL]", "[EMAIL]")
    assert plain["changed_fields"] == ["email"]
    assert plain["message"] == "e-mail changed from [EMAIL] to [EMAIL]"


async def test_the_key_is_never_returned_by_the_api(
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    platform_admin: dict[str, str],
    database_url: str,
) -> None:
    acme = bearer(make_token("admin", "acme"))
    auditor = bearer(make_token("auditor", "acme"))
    await client.patch("/api/v1/tenants/acme", json=PSEUDONYMISE, headers=acme)
    await post_and_read(client, acme, change(ANN, BOB))
    key = key_of(database_url, "acme")
    spellings = [key.hex(), base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode()]

    answers = [
        await client.get("/api/v1/tenants/acme", headers=acme),
        await client.get("/api/v1/tenants", headers=platform_admin),
        await client.get("/api/v1/logs", headers=auditor),
        await client.get("/api/v1/logs/export", params={"format": "json"}, headers=auditor),
        await client.get("/api/v1/logs", params={"tenant_id": "platform"}, headers=platform_admin),
    ]

    assert [answer.status_code for answer in answers] == [200] * len(answers)
    assert "[EMAIL:" in answers[2].text  # the search did find the events
    for answer in answers:
        for spelling in spellings:
            assert spelling not in answer.text
            assert spelling.lower() not in answer.text.lower()


async def test_every_tenant_gets_its_own_key_when_created(
    client: httpx.AsyncClient, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT tenant_id, length(pseudonym_key) FROM tenant_secrets ORDER BY tenant_id"
        ).fetchall()
        distinct = conn.execute(
            "SELECT count(DISTINCT pseudonym_key) FROM tenant_secrets"
        ).fetchone()
    # platform: made by the migration's backfill; acme and globex: with the tenant.
    assert rows == [("acme", 32), ("globex", 32), ("platform", 32)]
    assert distinct == (3,)


@pytest.mark.parametrize(
    ("bad", "pointers"),
    [
        ({"masking": "on"}, ["/settings/masking"]),
        (
            {"masking": {"email": "hash", "redact_keys": ["iban", 5], "colour": "red"}},
            [
                "/settings/masking/colour",
                "/settings/masking/email",
                "/settings/masking/redact_keys/1",
            ],
        ),
        ({"masking": {"exempt_keys": ["password_hint"]}}, ["/settings/masking/exempt_keys/0"]),
    ],
)
async def test_invalid_masking_settings_are_422_pointing_at_the_field_and_change_nothing(
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    platform_admin: dict[str, str],
    database_url: str,
    bad: dict[str, Any],
    pointers: list[str],
) -> None:
    acme = bearer(make_token("admin", "acme"))

    patched = await client.patch("/api/v1/tenants/acme", json={"settings": bad}, headers=acme)
    created = await client.post(
        "/api/v1/tenants", json={"id": "initech", "name": "I", "settings": bad},
        headers=platform_admin,
    )  # fmt: skip

    for response in (patched, created):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["title"] == "Invalid settings"
        assert sorted(error["pointer"] for error in problem["errors"]) == pointers
    assert (await client.get("/api/v1/tenants/acme", headers=acme)).json()["settings"] == {}
    assert (await client.get("/api/v1/tenants/initech", headers=platform_admin)).status_code == 404
    with psycopg.connect(database_url) as conn:
        records = conn.execute(
            "SELECT count(*) FROM events WHERE resource_type = 'tenant' AND resource_id = 'initech'"
        ).fetchone()
        changes = conn.execute(
            "SELECT count(*) FROM events WHERE tenant_id = 'acme' AND resource_type = 'tenant'"
        ).fetchone()
    assert (records, changes) == ((0,), (0,))


@asynccontextmanager
async def api_process(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_a_change_applies_at_once_where_made_and_within_the_ttl_elsewhere(
    client: httpx.AsyncClient, settings: Settings, make_token: TokenFactory
) -> None:
    acme = bearer(make_token("admin", "acme"))
    cached = settings.model_copy(deep=True)
    cached.ingest.masking_rules_ttl_seconds = 3600
    uncached = settings.model_copy(deep=True)
    uncached.ingest.masking_rules_ttl_seconds = 0
    async with api_process(cached) as other, api_process(uncached) as third:
        for http in (client, other, third):  # every process has acme's rules in hand
            event = await post_and_read(http, acme, change(ANN, BOB))
            assert event["before"]["email"] == "[EMAIL]"

        response = await client.patch("/api/v1/tenants/acme", json=PSEUDONYMISE, headers=acme)
        assert response.status_code == 200

        here = await post_and_read(client, acme, change(ANN, BOB))
        stale = await post_and_read(other, acme, change(ANN, BOB))
        fresh = await post_and_read(third, acme, change(ANN, BOB))
    assert PSEUDONYM.fullmatch(here["before"]["email"])  # invalidated in this process
    assert stale["before"]["email"] == "[EMAIL]"  # another process: within its TTL (1 h here)
    assert fresh["before"]["email"] == here["before"]["email"]  # its TTL (0) has passed
