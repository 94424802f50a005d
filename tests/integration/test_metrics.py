"""``GET /metrics`` after known traffic: exact counts; access settings; request ids and the
request log."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from auditline.config import MetricsSettings, Settings
from tests.conftest import TokenFactory, bearer

pytestmark = pytest.mark.usefixtures("tenants")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.metrics = MetricsSettings(tenant_labels=["acme"])
    return settings


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_exactly_the_traffic_sent(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    writer = bearer(make_token("user", "acme", sub="svc"))
    other = bearer(make_token("user", "globex", sub="svc"))
    auditor = bearer(make_token("auditor", "acme"))
    first = str(uuid.uuid4())
    for body in ({"action": "LOGIN", "id": first}, {"action": "LOGIN"}, {"action": "VIEW"}):
        assert (await client.post("/api/v1/logs", json=body, headers=writer)).status_code == 201
    duplicate = await client.post("/api/v1/logs", json={"action": "LOGIN", "id": first},
                                  headers=writer)  # fmt: skip
    assert duplicate.status_code == 200
    bulk = await client.post("/api/v1/logs/bulk", json={"events": [{"action": "VIEW"}] * 5},
                             headers=writer)  # fmt: skip
    assert bulk.status_code == 201
    # Refused by the ingest rules (the reserved resource type), not the schema: 2 events.
    refused = await client.post(
        "/api/v1/logs/bulk",
        json={"events": [{"action": "VIEW"}, {"action": "VIEW", "resource_type": "audit_log"}]},
        headers=writer,
    )
    assert refused.status_code == 422
    assert (await client.post("/api/v1/logs", json={"action": "X"},
                              headers=other)).status_code == 201  # fmt: skip
    for _ in range(2):
        found = await client.get("/api/v1/logs", params={"tenant_id": "acme"}, headers=auditor)
        assert found.status_code == 200
    assert (await client.get(f"/api/v1/logs/{first}", params={"tenant_id": "acme"},
                             headers=auditor)).status_code == 200  # fmt: skip
    assert (await client.get("/nowhere")).status_code == 404

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    m = samples(response.text)

    # Ingest: the tenant listed in metrics.tenant_labels by name, every other as _other.
    assert value(m, "auditline_events_ingested_total", tenant="acme") == 3 + 5
    assert value(m, "auditline_events_ingested_total", tenant="_other") == 1
    assert value(m, "auditline_events_duplicate_total", tenant="acme") == 1
    assert value(m, "auditline_events_rejected_total", tenant="acme") == 2
    # Requests by route template (never the id) and status.
    post, get = {"method": "POST"}, {"method": "GET"}
    logs, bulk_route = "/api/v1/logs", "/api/v1/logs/bulk"
    assert value(m, "auditline_http_requests_total", **post, route=logs, status="201") == 4
    assert value(m, "auditline_http_requests_total", **post, route=logs, status="200") == 1
    assert value(m, "auditline_http_requests_total", **post, route=bulk_route, status="201") == 1
    assert value(m, "auditline_http_requests_total", **post, route=bulk_route, status="422") == 1
    assert value(m, "auditline_http_requests_total", **get, route=logs, status="200") == 2
    by_id = "/api/v1/logs/{event_id}"
    assert value(m, "auditline_http_requests_total", **get, route=by_id, status="200") == 1
    assert value(m, "auditline_http_requests_total", **get, route="unmatched", status="404") == 1
    assert value(m, "auditline_http_request_duration_seconds_count", **get, route=logs) == 2
    assert value(m, "auditline_http_request_duration_seconds_count", **post, route=logs) == 5
    # Group commit: every small write went through the flusher: 5 single events (one a
    # duplicate), the 5-event bulk, and the 3 access records of the reads.
    assert value(m, "auditline_group_commit_events_sum") == 5 + 5 + 3
    assert value(m, "auditline_group_commit_wait_seconds_count") == 5 + 1 + 3
    assert 1 <= value(m, "auditline_group_commit_events_count") <= 9
    # Pools sampled at the scrape; nothing was refused.
    assert value(m, "auditline_db_pool_connections", pool="read") >= 1
    assert value(m, "auditline_db_pool_connections", pool="write") >= 1
    assert value(m, "auditline_db_pool_waiting", pool="write") == 0
    assert value(m, "auditline_reads_refused_total", kind="read") == 0
    assert value(m, "auditline_reads_in_flight", kind="read") == 0
    # No tenant id but the listed one anywhere.
    assert "globex" not in response.text


@pytest.fixture
def guarded(settings: Settings) -> Settings:
    settings.metrics.bearer_token = SecretStr("scrape-secret-0123456789")
    return settings


@pytest.mark.usefixtures("guarded")
async def test_metrics_can_require_a_bearer_token(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, bearer(make_token("admin", "*"))):
        response = await client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
    ok = await client.get("/metrics", headers=bearer("scrape-secret-0123456789"))
    assert ok.status_code == 200
    assert "auditline_http_requests_total" in ok.text


@pytest.fixture
def metrics_off(settings: Settings) -> Settings:
    settings.metrics.enabled = False
    return settings


@pytest.mark.usefixtures("metrics_off")
async def test_metrics_can_be_turned_off(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 404


@pytest.fixture
def request_lines() -> Iterator[list[dict[str, Any]]]:
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(record.getMessage()))

    logger = logging.getLogger("auditline.requests")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_every_request_has_one_log_line_and_its_id_in_header_and_problem(
    client: httpx.AsyncClient, make_token: TokenFactory, request_lines: list[dict[str, Any]]
) -> None:
    auditor = bearer(make_token("auditor", "acme", sub="ann"))
    missing = str(uuid.uuid4())
    answers = [
        await client.get(f"/api/v1/logs/{missing}", params={"tenant_id": "acme"},
                         headers=auditor | {"X-Request-ID": "trace-42"}),
        await client.get("/api/v1/logs", params={"tenant_id": "acme", "limit": "x"},
                         headers=auditor),
        await client.get("/api/v1/logs"),  # 401
        await client.post("/api/v1/logs", content=b"{}", headers=auditor),  # 415
    ]  # fmt: skip
    assert [a.status_code for a in answers] == [404, 422, 401, 415]
    for answer in answers:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["request_id"] == answer.headers["x-request-id"]
    assert answers[0].headers["x-request-id"] == "trace-42"

    assert [line["request_id"] for line in request_lines] == [
        a.headers["x-request-id"] for a in answers
    ]
    first = request_lines[0]
    assert first == {
        "request_id": "trace-42", "method": "GET", "route": "/api/v1/logs/{event_id}",
        "status": 404, "duration_ms": first["duration_ms"], "tenant": "acme",
        "principal": "jwt::ann",
    }  # fmt: skip
    assert first["duration_ms"] > 0
    assert request_lines[2]["principal"] is None
