"""Reads are recorded, but searches, exports and statistics show the tenant's own activity.

The service records every read of a log in that log (resource type ``audit_log``). An
auditor who searches five times must not then find five records of their own searches, nor
count them in statistics: those records are left out unless asked for
(``include_access=true``, a ``resource_type=audit_log`` filter or ``q`` term). Events that
clients send, ``VIEW`` ones included, stay visible.
"""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from tests.conftest import TokenFactory, bearer

pytestmark = pytest.mark.usefixtures("tenants")


@pytest.fixture
def auditor(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("auditor", "acme", sub="auditor-acme"))


@pytest.fixture
async def client_view(client: httpx.AsyncClient, make_token: TokenFactory) -> str:
    """A VIEW event a client sent (of an invoice, mentioning zebra): the tenant's activity."""
    writer = bearer(make_token("user", "acme", sub="app"))
    response = await client.post(
        "/api/v1/logs",
        json={"action": "VIEW", "resource_type": "invoice", "resource_id": "inv-1",
              "message": "opened the zebra invoice", "user_id": "app"},
        headers=writer,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _ids(client: httpx.AsyncClient, auditor: dict[str, str], **params: str) -> list[str]:
    response = await client.get("/api/v1/logs", params=params, headers=auditor)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_searches_do_not_find_the_records_of_searches(
    client: httpx.AsyncClient, auditor: dict[str, str], client_view: str
) -> None:
    for _ in range(5):
        assert await _ids(client, auditor, q="zebra") == [client_view]
    # The five searches were recorded, with their query, in the tenant's log...
    recorded = await _ids(client, auditor, q="zebra", include_access="true")
    assert client_view in recorded
    assert len(recorded) == 1 + 5
    # ... and asking for their resource type finds them too, by filter or by term.
    by_filter = await _ids(client, auditor, resource_type="audit_log", limit="100")
    by_term = await _ids(client, auditor, q="resource_type:audit_log", limit="100")
    assert set(recorded) - {client_view} <= set(by_filter)
    assert set(by_term) - set(by_filter) == {by_term[0]}  # the newest: the filtered search
    assert client_view not in by_term
    # A client's VIEW events are the tenant's activity: found without asking.
    assert await _ids(client, auditor, action="VIEW") == [client_view]


async def test_exports_and_statistics_leave_records_of_reads_out_unless_asked(
    client: httpx.AsyncClient, auditor: dict[str, str], client_view: str
) -> None:
    for _ in range(3):
        await _ids(client, auditor)
    export = await client.get("/api/v1/logs/export", headers=auditor)
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [row["id"] for row in rows] == [client_view]
    with_reads = await client.get(
        "/api/v1/logs/export", params={"include_access": "true"}, headers=auditor
    )
    kinds = {row["resource_type"] for row in csv.DictReader(io.StringIO(with_reads.text))}
    assert kinds == {"invoice", "audit_log"}

    stats = (await client.get("/api/v1/logs/stats", headers=auditor)).json()
    assert stats["total"] == 1
    assert stats["by_resource_type"] == [{"key": "invoice", "count": 1}]
    counted = await client.get(
        "/api/v1/logs/stats", params={"include_access": "true"}, headers=auditor
    )
    body = counted.json()
    # The event; 3 searches; 2 exports, each recorded as it starts and as it ends; 1 stats.
    assert body["total"] == 1 + 3 + 2 * 2 + 1
    assert {c["key"]: c["count"] for c in body["by_resource_type"]} == {
        "invoice": 1,
        "audit_log": 8,
    }


async def test_clients_cannot_write_records_that_pass_for_the_services_own(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    writer = bearer(make_token("user", "acme", sub="app"))
    one = await client.post(
        "/api/v1/logs", json={"action": "VIEW", "resource_type": "audit_log"}, headers=writer
    )
    assert one.status_code == 422
    assert one.json()["errors"] == [
        {"pointer": "/resource_type",
         "detail": "'audit_log' is reserved for the service's records of reads"}
    ]  # fmt: skip
    bulk = await client.post(
        "/api/v1/logs/bulk",
        json={"events": [{"action": "VIEW"}, {"action": "VIEW", "resource_type": "audit_log"}]},
        headers=writer,
    )
    assert bulk.status_code == 422
    assert [e["pointer"] for e in bulk.json()["errors"]] == ["/events/1/resource_type"]
    stored = await client.get(
        "/api/v1/logs",
        params={"include_access": "true", "action": "VIEW"},
        headers=bearer(make_token("auditor", "acme")),
    )
    assert stored.json()["items"] == []  # nothing was stored
