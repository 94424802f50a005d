"""The write routes' direct call (``api.routing.ModelBodyRoute``): a request without a
query string and with a valid body skips FastAPI's dependency solving, and answers exactly
as FastAPI's path would."""

from __future__ import annotations

import uuid
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI, HTTPException

from auditline.api.deps import get_principal
from tests.conftest import TokenFactory, bearer
from tests.integration.test_ingest_api import event

pytestmark = pytest.mark.usefixtures("tenants")

# What differs between two stored events with the same content: not the answer's shape.
_PER_EVENT = {"id", "seq", "received_at", "leaf_hash"}


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests FastAPI solved dependencies for, in order."""
    calls: list[str] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*, request: Any, **kwargs: Any) -> Any:
        calls.append(request.url.path)
        return await original(request=request, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return calls


@pytest.fixture
def writer(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("user", "acme", sub="svc-acme"))


async def test_a_plain_create_is_called_directly_and_answers_as_fastapi_would(
    client: httpx.AsyncClient, writer: dict[str, str], solved: list[str]
) -> None:
    ts = "2026-12-07T08:00:00.5+01:00"
    direct = await client.post("/api/v1/logs", json=event(timestamp=ts), headers=writer)
    assert solved == []
    through_fastapi = await client.post(
        "/api/v1/logs", params={"tenant_id": "acme"}, json=event(timestamp=ts), headers=writer
    )
    assert solved == ["/api/v1/logs"]

    assert direct.status_code == through_fastapi.status_code == 201
    assert direct.headers["content-type"] == through_fastapi.headers["content-type"]
    mine, theirs = direct.json(), through_fastapi.json()
    assert mine.keys() == theirs.keys()
    assert {k: v for k, v in mine.items() if k not in _PER_EVENT} == {
        k: v for k, v in theirs.items() if k not in _PER_EVENT
    }
    assert theirs["seq"] == mine["seq"] + 1


async def test_a_retry_on_the_direct_path_is_the_same_200_as_on_fastapis(
    client: httpx.AsyncClient, writer: dict[str, str], solved: list[str]
) -> None:
    body = event(id=str(uuid.uuid4()))
    first = await client.post("/api/v1/logs", json=body, headers=writer)
    direct = await client.post("/api/v1/logs", json=body, headers=writer)
    through_fastapi = await client.post(
        "/api/v1/logs", params={"tenant_id": "acme"}, json=body, headers=writer
    )
    assert solved == ["/api/v1/logs"]
    assert first.status_code == 201
    assert direct.status_code == through_fastapi.status_code == 200
    assert direct.json() == through_fastapi.json()
    assert (direct.json()["id"], direct.json()["seq"]) == (body["id"], 0)


async def test_a_plain_bulk_is_called_directly(
    client: httpx.AsyncClient, writer: dict[str, str], solved: list[str]
) -> None:
    response = await client.post(
        "/api/v1/logs/bulk", json={"events": [event(), event()]}, headers=writer
    )
    assert response.status_code == 201, response.text
    assert response.json()["inserted"] == 2
    assert solved == []


async def test_the_direct_path_authenticates_before_anything_is_stored(
    client: httpx.AsyncClient, solved: list[str]
) -> None:
    refused = await client.post(
        "/api/v1/logs", json=event(), headers={"Authorization": "Bearer not-a-token"}
    )
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert solved == []


async def test_an_invalid_body_takes_fastapis_path_and_its_errors(
    client: httpx.AsyncClient, writer: dict[str, str], solved: list[str]
) -> None:
    refused = await client.post("/api/v1/logs", json=event(severity="LOUD"), headers=writer)
    assert refused.status_code == 422
    assert [e["pointer"] for e in refused.json()["errors"]] == ["/severity"]
    assert solved == ["/api/v1/logs"]


async def test_dependency_overrides_are_honoured(
    app: FastAPI, client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    def teapot() -> None:
        raise HTTPException(418, "overridden")

    app.dependency_overrides[get_principal] = teapot
    try:
        response = await client.post("/api/v1/logs", json=event(), headers=writer)
    finally:
        app.dependency_overrides.clear()
    assert response.status_code == 418
