"""GET /api/v1/logs with facets, highlight and labelled totals (issue #23).

Facet counts are checked against the very events the same search returns (limit 100
holds them all here), so they are exact, of the caller's tenant only (globex holds the
same users, words and resources), and without the access records that every search adds.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import TokenFactory, bearer
from tests.integration.search_fixtures import ACME_EVENTS, GLOBEX_EVENTS, DataSet, load

pytestmark = pytest.mark.usefixtures("tenants")

FIELDS = ("action", "user_id", "resource_type", "severity", "outcome")


@pytest.fixture
def auditor(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("auditor", "acme", sub="auditor-acme"))


@pytest.fixture
async def data(client: httpx.AsyncClient, make_token: TokenFactory) -> DataSet:
    acme = await load(client, bearer(make_token("admin", "acme")), "acme", ACME_EVENTS)
    html = {"h0": {"action": "UPDATE", "message": "<b>invoice</b> & co",
                   "metadata": {"note": "<i>invoice</i>", "other": "nothing"}}}  # fmt: skip
    await load(client, bearer(make_token("admin", "acme")), "acme", html, base=acme.base)
    await load(client, bearer(make_token("admin", "globex")), "globex", GLOBEX_EVENTS,
               base=acme.base)  # fmt: skip
    return acme


async def search(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> Any:
    response = await client.get("/api/v1/logs", params={"limit": 100, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    "params",
    [{}, {"q": "invoice"}, {"q": "invoice", "user_id": "alice"}, {"severity": "INFO"},
     {"q": "signed OR invoice"}],
)  # fmt: skip
async def test_facets_count_exactly_the_events_the_search_returns(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet, params: dict[str, str]
) -> None:
    body = await search(
        client, auditor, **data.window, **params, facets=",".join(FIELDS), include_total="true"
    )
    items = body["items"]
    assert body["next_cursor"] is None
    assert body["total"] == {"value": len(items), "relation": "eq"}
    facets = body["facets"]
    assert (facets["partial"], facets["sampled"]) == (False, None)
    assert set(facets["fields"]) == set(FIELDS)
    for field in FIELDS:
        expected = Counter(item[field] for item in items)
        got = facets["fields"][field]
        assert got["relation"] == "eq"
        assert {v["key"]: v["count"] for v in got["values"]} == expected


async def test_facet_size_keeps_the_most_frequent_values(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    body = await search(client, auditor, **data.window, facets="resource_type", facet_size=1)
    # invoice: e1, e2, e5; the rest once or unset (e6, e7, h0: three None)
    values = body["facets"]["fields"]["resource_type"]["values"]
    assert values == [{"key": "invoice", "count": 3}]


async def test_facets_leave_out_access_records_unless_included(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    await search(client, auditor)  # at least one access record of acme, dated now
    hidden = await search(client, auditor, facets="resource_type")
    keys = {v["key"] for v in hidden["facets"]["fields"]["resource_type"]["values"]}
    assert "audit_log" not in keys
    shown = await search(client, auditor, facets="resource_type", include_access="true")
    keys = {v["key"] for v in shown["facets"]["fields"]["resource_type"]["values"]}
    assert "audit_log" in keys


async def test_an_unknown_facet_field_is_a_validation_problem(
    client: httpx.AsyncClient, auditor: dict[str, str]
) -> None:
    response = await client.get(
        "/api/v1/logs", params={"facets": "action,message"}, headers=auditor
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert any(e.get("parameter") == "facets" for e in problem["errors"]), problem


async def test_highlights_mark_matched_words_html_safely(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    body = await search(client, auditor, **data.window, q="invoice", highlight="true")
    by_id = {h["id"]: h for h in body["highlights"]}
    assert set(by_id) == {item["id"] for item in body["items"]}
    messages = {h["message"] for h in body["highlights"]}
    assert "changed the <mark>invoice</mark> total" in messages
    assert "&lt;b&gt;<mark>invoice</mark>&lt;/b&gt; &amp; co" in messages
    html = next(h for h in body["highlights"] if h["message"].startswith("&lt;b&gt;"))
    assert html["metadata"] == [
        {"path": ["note"], "value": "&lt;i&gt;<mark>invoice</mark>&lt;/i&gt;"}
    ]
    plain = await search(client, auditor, **data.window, q="invoice")
    assert plain["highlights"] is None


async def test_a_faceted_search_is_recorded_with_its_facets(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet, database_url: str
) -> None:
    response = await client.get(
        "/api/v1/logs",
        params={**data.window, "facets": "user_id,action", "highlight": "true", "q": "invoice"},
        headers={**auditor, "X-Request-ID": "req-facets-1"},
    )
    assert response.status_code == 200

    def recorded() -> list[Any]:
        with psycopg.connect(database_url) as conn:
            return conn.execute(
                "SELECT tenant_id, metadata FROM events WHERE request_id = 'req-facets-1'"
            ).fetchall()

    rows = await asyncio.to_thread(recorded)
    assert len(rows) == 1
    tenant, metadata = rows[0]
    assert tenant == "acme"
    assert metadata["facets"] == ["action", "user_id"]
    assert metadata["highlight"] is True


async def test_a_user_s_facets_count_only_their_own_events(
    client: httpx.AsyncClient, make_token: TokenFactory, data: DataSet
) -> None:
    alice = bearer(make_token("user", "acme", sub="alice"))
    body = await search(client, alice, **data.window, facets="user_id,action")
    assert body["facets"]["fields"]["user_id"]["values"] == [{"key": "alice", "count": 3}]
    actions = {v["key"]: v["count"] for v in body["facets"]["fields"]["action"]["values"]}
    assert actions == {"LOGIN": 1, "UPDATE": 1, "LOGOUT": 1}
