"""GET /api/v1/logs: every filter, the query language, totals, roles, isolation, recording.

The text tests run twice: with the default plan (walk in time order, then the GIN index)
and with a probe budget of 2 rows, which forces the GIN route for nearly every query.
Both must give the same answers.
"""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from auditline.config import SearchSettings, Settings
from tests.conftest import TokenFactory, bearer
from tests.integration.search_fixtures import ACME_EVENTS, GLOBEX_EVENTS, DataSet, load

pytestmark = pytest.mark.usefixtures("tenants")


# The full-text plan has three routes; each must give the same answers. "default": one
# walk fills every page here; "walk": 2-row first walks, then a second walk sized from the
# density; "index": 2-row first walks, then the GIN index at once.
PLANS = {"default": (2000, 10_000), "walk": (2, 1_000_000), "index": (2, 0)}


@pytest.fixture(params=list(PLANS))
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    probe_rows, probe_max_rows = PLANS[request.param]
    settings.search = SearchSettings(
        probe_rows=probe_rows, probe_max_rows=probe_max_rows, exact_total_limit=5
    )
    return settings


@pytest.fixture
def admin(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("admin", "acme", sub="admin-acme"))


@pytest.fixture
def auditor(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("auditor", "acme", sub="auditor-acme"))


@pytest.fixture
async def data(client: httpx.AsyncClient, make_token: TokenFactory) -> DataSet:
    globex_admin = bearer(make_token("admin", "globex"))
    acme = await load(client, bearer(make_token("admin", "acme")), "acme", ACME_EVENTS)
    await load(client, globex_admin, "globex", GLOBEX_EVENTS, base=acme.base)
    return acme


async def search(
    client: httpx.AsyncClient, headers: dict[str, str], data: DataSet | None, **params: Any
) -> httpx.Response:
    query = {**(data.window if data is not None else {}), "limit": 100, **params}
    return await client.get("/api/v1/logs", params=query, headers=headers)


async def names(
    client: httpx.AsyncClient, headers: dict[str, str], data: DataSet, **params: Any
) -> set[str]:
    response = await search(client, headers, data, **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return set(data.names(body["items"]))


EVERYTHING = set(ACME_EVENTS)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, EVERYTHING),
        ({"user_id": "alice"}, {"e0", "e1", "e7"}),
        ({"session_id": "s-2"}, {"e2", "e3"}),
        ({"action": "LOGIN"}, {"e0"}),
        ({"action": ["LOGIN", "LOGOUT", "EXPORT"]}, {"e0", "e7", "e4"}),
        ({"resource_type": "invoice"}, {"e1", "e2", "e5"}),
        ({"resource_type": "invoice", "resource_id": "inv-1002"}, {"e2"}),
        ({"severity": "ERROR"}, {"e3"}),
        ({"severity": ["ERROR", "WARNING"]}, {"e1", "e3"}),
        ({"min_severity": "ERROR"}, {"e3", "e4"}),
        ({"ip_address": "10.0.0.5"}, {"e0", "e1"}),
        ({"ip_address": "10.0.0.0/16"}, {"e0", "e1", "e2"}),
        ({"ip_address": "2001:db8::/32"}, {"e5"}),
        ({"request_id": "r-2"}, {"e1"}),
        ({"outcome": "failure"}, {"e3"}),
        ({"actor_type": "service"}, {"e5"}),
        ({"actor_type": "system"}, {"e6"}),
        ({"user_id": "alice", "action": "UPDATE", "resource_type": "invoice"}, {"e1"}),
    ],
)
async def test_each_filter_returns_exactly_the_matching_events(
    client: httpx.AsyncClient,
    auditor: dict[str, str],
    data: DataSet,
    params: dict[str, Any],
    expected: set[str],
) -> None:
    assert await names(client, auditor, data, **params) == expected


async def test_start_is_inclusive_and_end_exclusive(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    start, end = data.times["e2"].isoformat(), data.times["e5"].isoformat()
    found = await names(client, auditor, data, start=start, end=end)
    assert found == {"e2", "e3", "e4"}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("invoice", {"e1", "e2", "e5", "e6"}),
        ("invoices", {"e1", "e2", "e5", "e6"}),  # english stemming on the message
        ('"payroll report"', {"e4"}),
        ('"report payroll"', set()),
        ("sign*", {"e0", "e7"}),
        ("office OR payroll", {"e0", "e4"}),
        ("invoice -action:SYNC_INVOICES", {"e1", "e2", "e5"}),
        ("invoice NOT user_id:bob", {"e1", "e5", "e6"}),
        ("(invoice OR document) AND severity>=WARNING", {"e1", "e3"}),
        ("enterprise", {"e5", "e6"}),  # a metadata value, full text
        ("DE", {"e0"}),
        ("user_id:alice", {"e0", "e1", "e7"}),
        ("user_id:al*", {"e0", "e1", "e7"}),
        ('user_id:"svc-billing"', {"e5"}),
        ("resource_id:inv-*", {"e1", "e2", "e5"}),
        ("action:login", {"e0"}),
        ("action:LOG*", {"e0", "e7"}),
        ("severity:critical", {"e4"}),
        ("severity>=ERROR", {"e3", "e4"}),
        ("severity<WARNING", {"e0", "e2", "e5", "e6", "e7"}),
        ("outcome:failure", {"e3"}),
        ("actor_type:system", {"e6"}),
        ("ip_address:192.168.0.0/16", {"e3"}),
        ("-user_id:alice", {"e2", "e3", "e4", "e5", "e6"}),  # NOT includes events without user
        ("NOT ip_address:10.0.0.0/8", {"e3", "e4", "e5", "e6", "e7"}),
        ("metadata.geo.country:DE", {"e0"}),
        ("metadata.plan:enterprise", {"e5", "e6"}),
        ("metadata.plan:ent*", {"e5", "e6"}),
        ("metadata.tags:urgent", {"e1"}),  # arrays match any element
        ("metadata.amount:120", {"e1"}),
        ("metadata.amount>=80.5", {"e1", "e2"}),
        ("metadata.amount<100", {"e2"}),
        ("metadata.flag:true", {"e5"}),
        ("metadata.missing:x", set()),
        ("user_id:alice OR user_id:carol", {"e0", "e1", "e4", "e7"}),
        ("user_id:alice (action:LOGIN OR action:LOGOUT)", {"e0", "e7"}),
        ("signed -office", {"e7"}),
    ],
)
async def test_query_language(
    client: httpx.AsyncClient,
    auditor: dict[str, str],
    data: DataSet,
    q: str,
    expected: set[str],
) -> None:
    assert await names(client, auditor, data, q=q) == expected


async def test_timestamp_comparisons_in_the_query(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    at = data.times["e5"].isoformat()
    assert await names(client, auditor, data, q=f"timestamp>={at}") == {"e5", "e6", "e7"}
    assert await names(client, auditor, data, q=f"timestamp<{at}") == {
        "e0", "e1", "e2", "e3", "e4",
    }  # fmt: skip


async def test_id_match(client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet) -> None:
    assert await names(client, auditor, data, q=f"id:{data.ids['e3']}") == {"e3"}


async def test_a_parse_error_is_a_400_pointing_at_the_position(
    client: httpx.AsyncClient, auditor: dict[str, str]
) -> None:
    response = await search(client, auditor, None, q='user_id:alice "open')
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/query-syntax")
    assert body["errors"] == [
        {"parameter": "q", "in": "query", "position": 14,
         "detail": "missing closing '\"' for the quote here"},
    ]  # fmt: skip
    unknown = await search(client, auditor, None, q="invoice colour:red")
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["position"] == 8


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"severity": "LOUD"}, "severity"),
        ({"ip_address": "10.0.0.300"}, "ip_address"),
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"start": "2026-01-01T00:00:00"}, "start"),  # naive
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_parameters_are_422_naming_the_parameter(
    client: httpx.AsyncClient, auditor: dict[str, str], params: dict[str, Any], parameter: str
) -> None:
    response = await client.get("/api/v1/logs", params=params, headers=auditor)
    assert response.status_code == 422, response.text
    assert any(parameter in e.get("parameter", "") for e in response.json()["errors"])


async def test_results_are_newest_first_by_default_and_oldest_first_with_asc(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    desc = (await search(client, auditor, data)).json()["items"]
    asc = (await search(client, auditor, data, order="asc")).json()["items"]
    assert data.names(desc) == ["e7", "e6", "e5", "e4", "e3", "e2", "e1", "e0"]
    assert data.names(asc) == list(reversed(data.names(desc)))


async def test_items_have_the_full_event_shape(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    (item,) = (await search(client, auditor, data, request_id="r-2")).json()["items"]
    assert item["id"] == str(data.ids["e1"])
    assert item["tenant_id"] == "acme"
    assert item["before"] == {"total": 100}
    assert item["after"] == {"total": 120}
    assert item["changed_fields"] == ["total"]
    assert item["metadata"] == {"amount": 120, "tags": ["billing", "urgent"]}
    assert len(item["leaf_hash"]) == 64
    fetched = await client.get(f"/api/v1/logs/{item['id']}", headers=auditor)
    assert fetched.json() == item


async def test_include_total_is_exact_below_the_threshold_and_labelled_above(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    # The module's settings put the exact-count threshold at 5.
    small = await search(client, auditor, data, user_id="alice", include_total="true", limit=1)
    assert small.json()["total"] == {"value": 3, "relation": "eq"}
    assert small.json()["next_cursor"] is not None
    # More than 5 matches: the limit as a lower bound, or PostgreSQL's estimate above it.
    large = await search(client, auditor, data, actor_type="user", include_total="true", limit=2)
    total = large.json()["total"]
    if total["relation"] == "approx":
        assert total["value"] > 5
    else:
        assert total == {"value": 5, "relation": "gte"}
    # A time range alone is counted from the hourly rollups, exactly, whatever the limit.
    timed = await search(client, auditor, data, include_total="true", limit=2)
    assert timed.json()["total"] == {"value": len(ACME_EVENTS), "relation": "eq"}
    text = await search(client, auditor, data, q="invoice", include_total="true")
    assert text.json()["total"] == {"value": 4, "relation": "eq"}
    plain = await search(client, auditor, data)
    assert plain.json()["total"] is None


async def test_other_tenants_events_never_appear(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet, make_token: TokenFactory
) -> None:
    # globex holds events with the same users, words, resources and IP.
    for params in ({}, {"q": "invoice"}, {"q": "office"}, {"user_id": "bob"},
                   {"ip_address": "10.0.0.5"}, {"q": "metadata.plan:pro"}):  # fmt: skip
        response = await search(client, auditor, data, **params)
        assert all(item["tenant_id"] == "acme" for item in response.json()["items"])
        assert "?" not in data.names(response.json()["items"])
    # Naming the other tenant is a 404, exactly like a tenant that does not exist.
    other = await search(client, auditor, data, tenant_id="globex")
    assert other.status_code == 404
    missing = await search(client, auditor, data, tenant_id="nope")
    assert missing.status_code == 404
    assert other.json()["detail"].replace("globex", "X") == missing.json()["detail"].replace(
        "nope", "X"
    )
    both = bearer(make_token("auditor", "acme", "globex"))
    needs_tenant = await search(client, both, data)
    assert needs_tenant.status_code == 422
    globex = await search(client, both, data, tenant_id="globex")
    assert {i["tenant_id"] for i in globex.json()["items"]} == {"globex"}
    assert len(globex.json()["items"]) == len(GLOBEX_EVENTS)


async def test_a_user_sees_only_their_own_events(
    client: httpx.AsyncClient, data: DataSet, make_token: TokenFactory
) -> None:
    alice = bearer(make_token("user", "acme", sub="alice"))
    assert await names(client, alice, data) == {"e0", "e1", "e7"}
    assert await names(client, alice, data, user_id="bob") == set()
    assert await names(client, alice, data, q="invoice") == {"e1"}
    assert await names(client, alice, data, q="user_id:bob OR user_id:alice") == {
        "e0", "e1", "e7",
    }  # fmt: skip


async def test_a_cursor_is_bound_to_the_user_restriction(
    client: httpx.AsyncClient, data: DataSet, make_token: TokenFactory, auditor: dict[str, str]
) -> None:
    first = await search(client, auditor, data, limit=1)
    cursor = first.json()["next_cursor"]
    alice = bearer(make_token("user", "acme", sub="alice"))
    reused = await search(client, alice, data, limit=1, cursor=cursor)
    assert reused.status_code == 400


async def test_every_search_is_recorded_in_the_tenants_log(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet, database_url: str
) -> None:
    response = await client.get(
        "/api/v1/logs",
        params={**data.window, "user_id": "alice", "q": "signed", "limit": 10},
        headers={**auditor, "X-Request-ID": "req-search-1"},
    )
    assert response.status_code == 200
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT tenant_id, user_id, action, resource_type, metadata, request_id, outcome
                 FROM events WHERE request_id = 'req-search-1'"""
        ).fetchall()
    assert len(rows) == 1
    tenant, user, action, rtype, metadata, _request_id, outcome = rows[0]
    assert (tenant, user, action, rtype, outcome) == (
        "acme", "auditor-acme", "VIEW", "audit_log", "success",
    )  # fmt: skip
    assert metadata["result_count"] == 2
    assert metadata["query"]["user_id"] == "alice"
    assert metadata["query"]["q"] == "signed"
    assert metadata["query"]["start"] == data.window["start"]


async def test_a_failed_search_stores_nothing(
    client: httpx.AsyncClient, auditor: dict[str, str], database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        before = conn.execute("SELECT count(*) FROM events").fetchone()
    response = await search(client, auditor, None, q="(unbalanced")
    assert response.status_code == 400
    with psycopg.connect(database_url) as conn:
        after = conn.execute("SELECT count(*) FROM events").fetchone()
    assert before == after
