"""``WS /api/v1/logs/stream`` over a real uvicorn server and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import psycopg
import pytest

from auditline.config import Settings, StreamSettings
from tests.conftest import TokenFactory, bearer
from tests.integration.stream_server import (
    Running,
    closed,
    connect,
    events,
    events_until_lagged,
    serve,
    until_ready,
)


def _with(settings: Settings, **stream: Any) -> Settings:
    return settings.model_copy(update={"stream": StreamSettings(**stream)})


@pytest.fixture
async def running(settings: Settings, platform_admin: dict[str, str]) -> AsyncIterator[Running]:
    fast = _with(settings, auth_timeout_seconds=0.5, max_streams_per_tenant=3, buffer_events=50)
    async with serve(fast) as running:
        for tenant in ("acme", "globex"):
            created = await running.http.post(
                "/api/v1/tenants", json={"id": tenant, "name": tenant}, headers=platform_admin
            )
            assert created.status_code == 201, created.text
        yield running


async def _post(running: Running, token: str, tenant: str, n: int = 1, **fields: Any) -> list[str]:
    body = {"events": [{"action": "UPDATE", "tenant_id": tenant, **fields} for _ in range(n)]}
    response = await running.http.post("/api/v1/logs/bulk", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    ids: list[str] = response.json()["ids"]
    return ids


# -- authentication and authorization


async def test_header_token_streams_events_exactly_as_get_returns_them(
    running: Running, make_token: TokenFactory
) -> None:
    auditor, writer = make_token("auditor", "acme"), make_token("admin", "acme")
    async with connect(running.url(), additional_headers=bearer(auditor)) as ws:
        await until_ready(ws)
        [event_id] = await _post(running, writer, "acme", message="hello", metadata={"k": [1]})
        [message] = await events(ws, 1)
    got = await running.http.get(
        f"/api/v1/logs/{event_id}", params={"tenant_id": "acme"}, headers=bearer(auditor)
    )
    assert message["data"] == got.json()
    assert message["data"]["id"] == event_id
    assert int(message["cursor"]) >= 0


async def test_access_token_parameter_and_auth_message_authenticate(
    running: Running, make_token: TokenFactory
) -> None:
    auditor, writer = make_token("auditor", "acme"), make_token("admin", "acme")
    async with (
        connect(running.url(access_token=auditor)) as by_query,
        connect(running.url()) as by_message,
    ):
        await by_message.send(orjson.dumps({"type": "auth", "token": auditor}).decode())
        await until_ready(by_query)
        await until_ready(by_message)
        ids = await _post(running, writer, "acme", 2)
        for ws in (by_query, by_message):
            assert [m["data"]["id"] for m in await events(ws, 2)] == ids


@pytest.mark.parametrize(
    ("how", "code"),
    [("none", 4401), ("garbage header", 4401), ("bad first message", 4401), ("expired", 4401)],
)
async def test_failed_authentication_closes_with_4401(
    running: Running, make_token: TokenFactory, how: str, code: int
) -> None:
    headers = {}
    if how == "garbage header":
        headers = bearer("not-a-token")
    if how == "expired":
        headers = bearer(make_token("auditor", "acme", ttl=-60))
    async with connect(running.url(), additional_headers=headers) as ws:
        if how == "bad first message":
            await ws.send('{"type": "subscribe"}')
        got, reason, messages = await closed(ws)
    assert got == code
    assert reason
    assert messages[-1]["type"] == "error"


async def test_a_token_expiring_during_the_stream_closes_it_with_4401(
    running: Running, make_token: TokenFactory
) -> None:
    async with connect(
        running.url(), additional_headers=bearer(make_token("auditor", "acme", ttl=2))
    ) as ws:
        await until_ready(ws)
        code, reason, _ = await closed(ws, wait=15)
    assert code == 4401
    assert "expired" in reason


async def test_not_allowed_and_not_granted_close_with_4403_and_4404(
    running: Running, make_token: TokenFactory
) -> None:
    admin = make_token("admin", "acme")
    created = await running.http.post(
        "/api/v1/api-keys", json={"name": "w", "scopes": ["logs:write"]}, headers=bearer(admin)
    )
    assert created.status_code == 201, created.text
    write_only = created.json()["key"]
    async with connect(running.url(), additional_headers=bearer(write_only)) as ws:
        code, _, _ = await closed(ws)
    assert code == 4403
    async with connect(
        running.url(tenant_id="globex"), additional_headers=bearer(make_token("auditor", "acme"))
    ) as ws:
        code, _, _ = await closed(ws)
    assert code == 4404


@pytest.mark.parametrize(
    "params",
    [{"q": "severity:LOUD"}, {"severity": "LOUD"}, {"since": "x"}, {"nonsense": "1"},
     {"since": "1000000"}],
)  # fmt: skip
async def test_bad_parameters_close_with_4400(
    running: Running, make_token: TokenFactory, params: dict[str, str]
) -> None:
    headers = bearer(make_token("auditor", "acme"))
    async with connect(running.url(**params), additional_headers=headers) as ws:
        code, reason, messages = await closed(ws)
    assert code == 4400, reason
    assert messages == [{"type": "error", "code": 4400, "detail": reason}] or reason


# -- filters and isolation


async def test_filters_and_q_select_live_events_as_a_search_would(
    running: Running, make_token: TokenFactory
) -> None:
    auditor, writer = make_token("auditor", "acme"), make_token("admin", "acme")
    url = running.url(q='"card declined" OR metadata.amount>=100', severity=["ERROR", "CRITICAL"])
    async with connect(url, additional_headers=bearer(auditor)) as ws:
        await until_ready(ws)
        await _post(running, writer, "acme", message="the card was declined", severity="INFO")
        [a] = await _post(running, writer, "acme", message="cards declined", severity="ERROR")
        await _post(running, writer, "acme", metadata={"amount": 99}, severity="CRITICAL")
        [b] = await _post(running, writer, "acme", metadata={"amount": 100}, severity="CRITICAL")
        [c] = await _post(running, writer, "acme", n=1, message="x", severity="ERROR",
                          metadata={"amount": [5, 150]})  # fmt: skip
        got = [m["data"]["id"] for m in await events(ws, 3)]
        search = await running.http.get(
            "/api/v1/logs",
            params={"tenant_id": "acme", "q": '"card declined" OR metadata.amount>=100',
                    "severity": ["ERROR", "CRITICAL"], "order": "asc"},
            headers=bearer(auditor),
        )  # fmt: skip
    assert got == [a, b, c]
    assert [e["id"] for e in search.json()["items"]] == got


async def test_a_user_sees_only_their_own_events_and_access_records_only_when_asked(
    running: Running, make_token: TokenFactory
) -> None:
    writer = make_token("admin", "acme")
    user = make_token("user", "acme", sub="carol")
    async with (
        connect(running.url(), additional_headers=bearer(user)) as own,
        connect(running.url(include_access="true"),
                additional_headers=bearer(make_token("auditor", "acme"))) as everything,
    ):  # fmt: skip
        await until_ready(own)
        await until_ready(everything)
        await _post(running, writer, "acme", user_id="dave")
        [mine] = await _post(running, writer, "acme", user_id="carol")
        await running.http.get(
            "/api/v1/logs", params={"tenant_id": "acme"}, headers=bearer(user)
        )  # an access record by carol
        [later] = await _post(running, writer, "acme", user_id="carol")
        assert [m["data"]["id"] for m in await events(own, 2)] == [mine, later]
        seen = []
        while not seen or seen[-1]["data"]["id"] != later:
            seen += await events(everything, 1)
    searched = [m["data"] for m in seen if m["data"]["message"] == "searched audit events"]
    assert len(searched) == 1
    assert searched[0]["user_id"] == "carol"
    assert searched[0]["resource_type"] == "audit_log"


async def test_a_subscriber_never_receives_another_tenants_events(
    running: Running, make_token: TokenFactory
) -> None:
    admin = make_token("admin", "acme", "globex")
    async with connect(running.url(tenant_id="acme", include_access="true"),
                       additional_headers=bearer(admin)) as ws:  # fmt: skip
        await until_ready(ws)
        secret = await _post(running, admin, "globex", 30, message="secret", user_id="alice")
        [marker] = await _post(running, admin, "acme", 1, message="public")
        got: list[dict[str, Any]] = []
        while not got or got[-1]["data"]["id"] != marker:
            got += await events(ws, 1)
    assert {m["data"]["tenant_id"] for m in got} == {"acme"}
    assert not {m["data"]["id"] for m in got} & set(secret)
    # what came besides the marker is this stream's own access record (include_access)
    assert [m["data"]["resource_type"] for m in got[:-1]] == ["audit_log"] * (len(got) - 1)


# -- resume, backpressure, cap


async def test_resume_replays_what_was_missed_then_continues_without_gap_or_duplicate(
    running: Running, make_token: TokenFactory
) -> None:
    auditor, writer = make_token("auditor", "acme"), make_token("admin", "acme")
    stop = asyncio.Event()
    written: list[str] = []

    async def ingest() -> None:
        while not stop.is_set():
            written.extend(await _post(running, writer, "acme", 7, severity="WARNING"))
            await asyncio.sleep(0.005)

    received: list[dict[str, Any]] = []
    async with connect(
        running.url(min_severity="WARNING"), additional_headers=bearer(auditor)
    ) as ws:
        await until_ready(ws)
        task = asyncio.create_task(ingest())
        received += await events_until_lagged(ws, 20)
    cursor = received[-1]["cursor"]
    # Reconnect several times while ingest goes on. A reader slowed by a loaded machine may
    # be told it lagged: it resumes from its cursor like any client, which is what is tested.
    for _ in range(3):
        await asyncio.sleep(0.05)
        url = running.url(min_severity="WARNING", since=cursor)
        async with connect(url, additional_headers=bearer(auditor)) as ws:
            replayed, _ = await until_ready(ws)
            received += replayed + await events_until_lagged(ws, 15)
        cursor = received[-1]["cursor"]
    stop.set()
    await task
    seqs = [int(m["cursor"]) for m in received]
    ids = [m["data"]["id"] for m in received]
    assert len(set(ids)) == len(ids), "a duplicate"
    assert ids == written[: len(ids)], "a gap or a reordering"
    assert seqs == sorted(seqs)


async def test_a_slow_consumer_is_told_where_to_resume_and_closed(
    running: Running, make_token: TokenFactory
) -> None:
    auditor, writer = make_token("auditor", "acme"), make_token("admin", "acme")
    async with connect(running.url(), additional_headers=bearer(auditor)) as ws:
        await until_ready(ws)
        [first] = await _post(running, writer, "acme", 1)
        [delivered] = await events(ws, 1)
        ids = await _post(running, writer, "acme", 200)  # 200 at once: the 50-event buffer fills
        code, _, seen = await closed(ws)
    assert delivered["data"]["id"] == first
    assert code == 4408
    lagged = [m for m in seen if m["type"] == "lagged"]
    assert len(lagged) == 1
    assert seen[-1] == lagged[0]
    sent = [m["data"]["id"] for m in seen if m["type"] == "event"]
    assert sent == ids[: len(sent)]
    async with connect(running.url(since=lagged[0]["cursor"]),
                       additional_headers=bearer(auditor)) as ws:  # fmt: skip
        replayed, _ = await until_ready(ws)
    assert [m["data"]["id"] for m in replayed] == ids[len(sent) :]


async def test_the_per_tenant_cap_closes_one_more_stream_with_4429(
    running: Running, make_token: TokenFactory
) -> None:
    auditor = bearer(make_token("auditor", "acme", "globex"))
    async with (
        connect(running.url(tenant_id="acme"), additional_headers=auditor) as a,
        connect(running.url(tenant_id="acme"), additional_headers=auditor) as b,
        connect(running.url(tenant_id="acme"), additional_headers=auditor) as c,
    ):
        for ws in (a, b, c):
            await until_ready(ws)
        async with connect(running.url(tenant_id="acme"), additional_headers=auditor) as d:
            code, _, _ = await closed(d)
        assert code == 4429
        async with connect(running.url(tenant_id="globex"), additional_headers=auditor) as g:
            await until_ready(g)  # another tenant's streams are not counted against it
    async with connect(running.url(tenant_id="acme"), additional_headers=auditor) as again:
        await until_ready(again)  # closed streams free their place


async def test_opening_a_stream_is_recorded_as_a_read(
    running: Running, make_token: TokenFactory
) -> None:
    auditor = make_token("auditor", "acme", sub="ann")
    async with connect(running.url(q="refund"), additional_headers=bearer(auditor)) as ws:
        await until_ready(ws)
    found = await running.http.get(
        "/api/v1/logs", params={"tenant_id": "acme", "resource_type": "audit_log",
                                "q": "stream"}, headers=bearer(auditor),
    )  # fmt: skip
    records = [
        e for e in found.json()["items"] if e["message"] == "opened a stream of audit events"
    ]
    assert len(records) == 1
    assert records[0]["user_id"] == "ann"
    assert records[0]["metadata"]["query"] == {"q": "refund"}


# -- lifetimes, credentials, the hub


@pytest.fixture
async def timed(settings: Settings, platform_admin: dict[str, str]) -> AsyncIterator[Running]:
    quick = _with(settings, ping_seconds=0.2, idle_timeout_seconds=1.5, recheck_seconds=0.2)
    async with serve(quick) as running:
        created = await running.http.post(
            "/api/v1/tenants", json={"id": "acme", "name": "acme"}, headers=platform_admin
        )
        assert created.status_code == 201, created.text
        yield running


async def test_pings_carry_the_cursor_and_an_idle_stream_closes_to_be_resumed(
    timed: Running, make_token: TokenFactory
) -> None:
    auditor, writer = make_token("auditor", "acme"), make_token("admin", "acme")
    async with connect(timed.url(), additional_headers=bearer(auditor)) as ws:
        await until_ready(ws)
        [event_id] = await _post(timed, writer, "acme")
        [event] = await events(ws, 1)
        code, reason, seen = await closed(ws)
    assert event["data"]["id"] == event_id
    pings = [m for m in seen if m["type"] == "ping"]
    assert len(pings) >= 3  # 1.5 s idle, a ping every 0.2 s
    assert {p["cursor"] for p in pings} == {event["cursor"]}
    assert code == 4000
    assert "idle" in reason


async def test_a_revoked_api_key_closes_its_stream_with_4401(
    timed: Running, make_token: TokenFactory
) -> None:
    admin = bearer(make_token("admin", "acme"))
    created = await timed.http.post(
        "/api/v1/api-keys", json={"name": "r", "scopes": ["logs:read"]}, headers=admin
    )
    assert created.status_code == 201, created.text
    key = created.json()
    async with connect(timed.url(), additional_headers=bearer(key["key"])) as ws:
        await until_ready(ws)
        revoked = await timed.http.delete(f"/api/v1/api-keys/{key['id']}", headers=admin)
        assert revoked.status_code == 204
        code, reason, _ = await closed(ws)
    assert code == 4401
    assert "no longer valid" in reason


async def test_the_maximum_lifetime_closes_a_busy_stream_too(
    settings: Settings, platform_admin: dict[str, str], make_token: TokenFactory
) -> None:
    async with serve(_with(settings, max_lifetime_seconds=1.0)) as running:
        await running.http.post(
            "/api/v1/tenants", json={"id": "acme", "name": "acme"}, headers=platform_admin
        )
        writer = make_token("admin", "acme")
        async with connect(running.url(), additional_headers=bearer(writer)) as ws:
            await until_ready(ws)
            for _ in range(3):
                await _post(running, writer, "acme")
                await asyncio.sleep(0.4)
            code, reason, _ = await closed(ws)
    assert code == 4000
    assert "lifetime" in reason


async def test_the_hub_reads_each_announced_range_once_whatever_the_subscribers(
    running: Running, make_token: TokenFactory
) -> None:
    auditor, writer = make_token("auditor", "acme"), make_token("admin", "acme")
    hub = running.app.state.services.streams.hub
    async with (
        connect(running.url(), additional_headers=bearer(auditor)) as a,
        connect(running.url(q="e1"), additional_headers=bearer(auditor)) as b,
        connect(running.url(severity="ERROR"), additional_headers=bearer(auditor)) as c,
    ):
        for ws in (a, b, c):
            await until_ready(ws)
        marker = await _post(running, writer, "acme", message="e1", severity="ERROR")
        for ws in (a, b, c):  # every announcement so far has been read
            assert [m["data"]["id"] for m in await events(ws, 1)] == marker
        reads = hub.reads
        ids = await _post(running, writer, "acme", 40, message="e1", severity="ERROR")
        for ws in (a, b, c):
            assert [m["data"]["id"] for m in await events(ws, 40)] == ids
    assert hub.reads == reads + 1


async def test_a_lost_listener_connection_is_made_good_by_seq(
    running: Running, make_token: TokenFactory, database_url: str
) -> None:
    auditor, writer = make_token("auditor", "acme"), make_token("admin", "acme")
    async with connect(running.url(), additional_headers=bearer(auditor)) as ws:
        await until_ready(ws)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as su:
            cur = await su.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query = 'LISTEN auditline_events'"
            )
            assert [row[0] for row in await cur.fetchall()] == [True]
        # Written while nobody listens: their announcements are lost, not their events.
        ids = await _post(running, writer, "acme", 5)
        ids += await _post(running, writer, "acme", 5)
        assert [m["data"]["id"] for m in await events(ws, 10)] == ids


async def test_a_client_that_stops_reading_is_cut_off_and_its_subscription_dropped(
    settings: Settings, platform_admin: dict[str, str], make_token: TokenFactory
) -> None:
    quick = _with(settings, send_timeout_seconds=0.5, buffer_events=100_000)
    async with serve(quick) as running:
        await running.http.post(
            "/api/v1/tenants", json={"id": "acme", "name": "acme"}, headers=platform_admin
        )
        writer = make_token("admin", "acme")
        hub = running.app.state.services.streams.hub
        # The client queues 4 frames, then stops reading the socket: the server's sends
        # block once the socket buffers are full (megabytes on loopback).
        async with connect(running.url(), additional_headers=bearer(writer), max_queue=4) as ws:
            await until_ready(ws)
            assert hub._feeds  # the subscription is there
            for _ in range(6):
                await _post(running, writer, "acme", 500, message="x" * 8000)
            for _ in range(100):
                if not hub._feeds:
                    break
                await asyncio.sleep(0.1)
            assert not hub._feeds, "the stalled connection kept its subscription"
