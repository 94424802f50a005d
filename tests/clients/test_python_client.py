"""The Python SDK (clients/python) against a real ``auditline serve``."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditline_client import (
    NO_RETRIES,
    AsyncClient,
    BadRequest,
    Client,
    Forbidden,
    NetworkError,
    NotFound,
    RateLimited,
    Retries,
    Unauthorized,
    ValidationFailed,
)
from tests.clients.conftest import READ_BUDGET, unique
from tests.clients.faults import FaultyProxy
from tests.conftest import TokenFactory
from tests.e2e.test_serve_process import Server

pytestmark = pytest.mark.slow


def test_an_event_round_trips_with_its_changes(acme: Client) -> None:
    request_id = unique()
    stored = acme.create(
        action="UPDATE", user_id="alice", resource_type="invoice", resource_id="inv-7",
        before={"total": 10, "status": "open"}, after={"total": 12, "status": "open"},
        timestamp=datetime(2026, 11, 30, 9, 15, tzinfo=UTC), request_id=request_id,
    )  # fmt: skip
    assert "duplicate" not in stored
    fetched = acme.get(stored["id"])
    assert fetched == stored
    assert fetched["changed_fields"] == ["total"]
    assert fetched["timestamp"].startswith("2026-11-30T09:15:00")
    assert [e["id"] for e in acme.iter_events(request_id=request_id)] == [stored["id"]]


def test_a_create_retried_after_a_lost_answer_stores_one_event(
    server: Server, make_token: TokenFactory, proxy: FaultyProxy, acme: Client
) -> None:
    request_id = unique()
    proxy.lose_answers(1)
    with Client(proxy.url, make_token("user", "acme", sub="svc")) as writer:
        answer = writer.create(action="LOGIN", user_id="svc", request_id=request_id)
    assert proxy.lost == 1  # the first attempt was stored, its answer never arrived
    assert answer.get("duplicate") is True  # the retry carried the same id
    stored = list(acme.iter_events(request_id=request_id))
    assert [e["id"] for e in stored] == [answer["id"]]


def test_a_create_without_retries_reports_the_lost_answer(
    make_token: TokenFactory, proxy: FaultyProxy
) -> None:
    proxy.lose_answers(1)
    writer = Client(proxy.url, make_token("user", "acme"), retries=NO_RETRIES)
    with writer, pytest.raises(NetworkError) as caught:
        writer.create(action="LOGIN")
    assert caught.value.__cause__ is not None


def test_a_request_that_gets_no_answer_times_out(
    make_token: TokenFactory, proxy: FaultyProxy
) -> None:
    proxy.hold()
    impatient = Client(proxy.url, make_token("admin", "acme"), timeout=0.3, retries=NO_RETRIES)
    with impatient, pytest.raises(NetworkError, match="Timeout"):
        impatient.list_api_keys()


def test_bulk_create_then_every_page_once_and_a_resend_stores_nothing(acme: Client) -> None:
    resource = unique()
    events = [
        {"action": "VIEW", "resource_type": "doc", "resource_id": resource} for _ in range(23)
    ]
    result = acme.create_many(events)  # type: ignore[arg-type]
    assert (result["inserted"], result["duplicates"], len(result["ids"])) == (23, 0, 23)

    seen = [e["id"] for e in acme.iter_events(resource_id=resource, page_size=10)]
    assert sorted(seen) == sorted(result["ids"])
    page = acme.search(resource_id=resource, limit=5, include_total=True)
    assert page["total"] == {"value": 23, "relation": "eq"}
    assert page["next_cursor"] is not None

    again = acme.create_many({**e, "id": i} for e, i in zip(events, result["ids"], strict=True))
    assert (again["inserted"], again["duplicates"]) == (0, 23)


def test_search_asks_for_facets_and_highlights(acme: Client) -> None:
    resource = unique()
    events = [
        {"action": action, "resource_type": "doc", "resource_id": resource,
         "message": f"opened the <b>ledger</b> {resource}"}
        for action in ("VIEW", "VIEW", "UPDATE")
    ]  # fmt: skip
    acme.create_many(events)  # type: ignore[arg-type]
    page = acme.search(
        resource_id=resource, q="ledger", facets=["action"], facet_size=1, highlight=True
    )
    assert page["facets"] is not None
    assert page["facets"]["fields"]["action"]["values"] == [{"key": "VIEW", "count": 2}]
    assert page["highlights"] is not None
    assert {h["message"] for h in page["highlights"]} == {
        f"opened the &lt;b&gt;<mark>ledger</mark>&lt;/b&gt; {resource}"
    }


def test_invalid_events_raise_validation_errors_with_pointers(acme: Client) -> None:
    resource = unique()
    with pytest.raises(ValidationFailed) as caught:
        acme.create_many([{"action": "LOGIN", "resource_id": resource}, {"action": "not a verb"}])
    error = caught.value
    assert error.status == 422
    assert error.pointers == ["/events/1/action"]
    assert error.errors[0]["index"] == 1
    assert error.request_id
    assert list(acme.iter_events(resource_id=resource)) == []  # all or nothing


def test_error_answers_become_typed_exceptions(
    server: Server, make_token: TokenFactory, acme: Client
) -> None:
    with pytest.raises(NotFound):
        acme.get("0193a8d0-0000-7000-8000-000000000000")
    with pytest.raises(BadRequest) as bad_query:
        acme.search(q="(unbalanced")
    assert bad_query.value.type.startswith("https://")
    with pytest.raises(NotFound):  # another tenant's data is indistinguishable from missing
        acme.search(tenant_id="globex")
    with Client(server.base, make_token("user", "acme")) as user, pytest.raises(Forbidden):
        user.list_api_keys()
    with Client(server.base, "not-a-token") as nobody, pytest.raises(Unauthorized):
        nobody.list_tenants()
    with pytest.raises(ValueError, match="timezone"):
        acme.create(action="LOGIN", timestamp=datetime(2026, 1, 1))


def read_until_refused(client: Client) -> None:
    """Reads faster than the budget refills (each takes milliseconds) until one is refused."""
    for _ in range(READ_BUDGET * 20):
        client.search(limit=1)


def test_rate_limited_reads_wait_for_retry_after(
    server: Server, make_token: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    token = make_token("auditor", "acme")
    with (
        Client(server.base, token, retries=NO_RETRIES) as once,
        pytest.raises(RateLimited) as caught,
    ):
        read_until_refused(once)
    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= 1

    caplog.set_level(logging.INFO, logger="auditline_client")
    with Client(server.base, token, retries=Retries(attempts=6)) as patient:
        for _ in range(READ_BUDGET * 2):
            patient.search(limit=1)  # every one answered, some after a wait
    waits = [r.auditline_retry for r in caplog.records if hasattr(r, "auditline_retry")]
    assert waits, "the budget ran out, so some read must have been retried"
    assert all(w["outcome"] == 429 and w["wait"] >= 1 for w in waits)  # Retry-After, in s


def test_export_streams_every_match_to_a_file(acme: Client, tmp_path: Path) -> None:
    resource = unique()
    ids = acme.create_many([{"action": "EXPORT", "resource_id": resource}] * 7)["ids"]
    target = tmp_path / "out.ndjson"
    size = acme.export(target, resource_id=resource)
    lines = target.read_text().splitlines()
    assert size == target.stat().st_size
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(ids)
    csv = acme.export(tmp_path / "out.csv", format="csv", resource_id=resource)
    assert csv > 0
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 8  # a header and 7 rows

    with pytest.raises(BadRequest):
        acme.export(tmp_path / "bad.ndjson", q="(unbalanced")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.ndjson"]


def test_stats_count_the_tenants_events(acme: Client) -> None:
    user = unique()
    acme.create_many([{"action": "LOGIN", "user_id": user, "severity": "WARNING"}] * 3)
    now = datetime.now(UTC)
    stats = acme.stats(user_id=user, start=now - timedelta(hours=1), end=now + timedelta(minutes=1))
    assert stats["total"] == 3
    assert stats["by_severity"] == [{"key": "WARNING", "count": 3}]


def test_tenants_and_api_keys_are_managed(
    server: Server, admin_token: str, make_token: TokenFactory
) -> None:
    tenant_id = f"t-{unique()[:12]}"
    with Client(server.base, admin_token) as platform:
        created = platform.create_tenant(tenant_id, "Initech", retention_days=30)
        assert created["retention_days"] == 30
        assert tenant_id in [t["id"] for t in platform.list_tenants()]
        changed = platform.update_tenant(tenant_id, retention_days=45, legal_hold=True)
        assert (changed["retention_days"], changed["legal_hold"]) == (45, True)
        assert platform.get_tenant(tenant_id) == changed

    with Client(server.base, make_token("admin", tenant_id)) as admin:
        key = admin.create_api_key("billing-service", ["logs:write", "logs:read"])
        assert key["key"].startswith("alk_")
        assert [k["id"] for k in admin.list_api_keys()] == [key["id"]]
        with Client(server.base, key["key"]) as service:
            stored = service.create(action="CREATE", resource_type="invoice")
            assert service.get(stored["id"])["tenant_id"] == tenant_id
            admin.revoke_api_key(key["id"])
            with pytest.raises(Unauthorized):
                service.create(action="CREATE")
        assert admin.list_api_keys()[0]["revoked_at"] is not None


async def test_the_async_client_does_the_same(
    server: Server, make_token: TokenFactory, tmp_path: Path
) -> None:
    resource = unique()
    async with AsyncClient(server.base, make_token("admin", "acme"), tenant_id="acme") as audit:
        one = await audit.create(action="DELETE", resource_id=resource)
        bulk = await audit.create_many([{"action": "DELETE", "resource_id": resource}] * 4)
        assert (await audit.get(one["id"]))["resource_id"] == resource
        found = [e["id"] async for e in audit.iter_events(resource_id=resource, page_size=2)]
        assert sorted(found) == sorted([one["id"], *bulk["ids"]])
        size = await audit.export(tmp_path / "x.json", format="json", resource_id=resource)
        assert len(json.loads((tmp_path / "x.json").read_bytes())) == 5
        assert size > 0
        assert (await audit.stats(resource_id=resource))["total"] == 5
        assert "acme" in [t["id"] for t in await audit.list_tenants()]
        with pytest.raises(ValidationFailed) as caught:
            await audit.create(action="DELETE", ip_address="not-an-address")
        assert caught.value.pointers == ["/ip_address"]
