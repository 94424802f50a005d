"""``/api/v1/jobs``: tenant admins see their tenant's jobs, platform admins every tenant's;
another tenant's job is answered exactly like one that does not exist."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from auditline.app import create_app
from auditline.config import Settings
from auditline.services import Services
from auditline.tenancy.scope import for_system
from tests.conftest import TokenFactory, bearer
from tests.jobs.test_queue_contract import eventually


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.rate_limits.enabled = False
    settings.jobs.in_process_worker = False  # jobs stay as submitted unless a test runs one
    return settings


@pytest.fixture
def http(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The root conftest's client over ``app`` (the tests below name it ``http``)."""
    return client


@pytest.fixture
async def jobs(app: FastAPI, http: httpx.AsyncClient, make_token: TokenFactory) -> dict[str, Any]:
    root = bearer(make_token("admin", "*", sub="root"))
    for tenant in ("acme", "globex"):
        response = await http.post("/api/v1/tenants", json={"id": tenant, "name": tenant},
                                   headers=root)  # fmt: skip
        assert response.status_code == 201
    services: Services = app.state.services
    made: dict[str, list[uuid.UUID]] = {"acme": [], "globex": [], "platform": []}
    for i in range(7):
        made["acme"].append(await services.jobs.submit(
            "export" if i % 2 else "archive", {"i": i},
            tenant=for_system("acme", reason="test"),
        ))  # fmt: skip
    made["globex"].append(await services.jobs.submit(
        "export", {}, tenant=for_system("globex", reason="test")
    ))  # fmt: skip
    made["platform"].append(await services.jobs.submit("upkeep", {}, tenant=None))
    return {"ids": made, "root": root, "acme": bearer(make_token("admin", "acme", sub="a"))}


async def pages(http: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await http.get("/api/v1/jobs", params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


async def test_a_tenant_admin_pages_through_exactly_their_tenants_jobs(
    http: httpx.AsyncClient, jobs: dict[str, Any]
) -> None:
    acme = [str(j) for j in jobs["ids"]["acme"]]
    assert await pages(http, jobs["acme"], limit=3) == acme[::-1]  # newest first, all once
    exports = await pages(http, jobs["acme"], kind="export", limit=2)
    assert exports == acme[1::2][::-1]
    assert await pages(http, jobs["acme"], status="succeeded") == []
    assert await pages(http, jobs["acme"], status="queued", limit=100) == acme[::-1]


async def test_a_job_reads_as_the_issue_describes_it(
    http: httpx.AsyncClient, jobs: dict[str, Any]
) -> None:
    job_id = jobs["ids"]["acme"][0]
    response = await http.get(f"/api/v1/jobs/{job_id}", headers=jobs["acme"])
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"id", "kind", "status", "progress", "result", "error", "created_at",
                         "started_at", "finished_at"}  # fmt: skip
    assert (body["id"], body["kind"], body["status"], body["tenant_id"]) == (
        str(job_id), "archive", "queued", "acme",
    )  # fmt: skip


async def test_another_tenants_job_is_answered_as_a_missing_one(
    http: httpx.AsyncClient, jobs: dict[str, Any]
) -> None:
    def shape(response: httpx.Response, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = response.json()
        body.pop("request_id", None)
        return {k: str(v).replace(job_id, "<id>") for k, v in body.items()}

    theirs = str(jobs["ids"]["globex"][0])
    missing = str(uuid.uuid4())
    for job_id in (theirs, str(jobs["ids"]["platform"][0])):
        got = await http.get(f"/api/v1/jobs/{job_id}", headers=jobs["acme"])
        none = await http.get(f"/api/v1/jobs/{missing}", headers=jobs["acme"])
        assert (got.status_code, none.status_code) == (404, 404)
        assert shape(got, job_id) == shape(none, missing)
    listed = await pages(http, jobs["acme"], limit=100)
    assert theirs not in listed


async def test_a_platform_admin_sees_every_tenants_jobs_or_one_tenants(
    http: httpx.AsyncClient, jobs: dict[str, Any]
) -> None:
    ids = {t: [str(j) for j in js] for t, js in jobs["ids"].items()}
    everything = await pages(http, jobs["root"], limit=4)
    assert sorted(everything) == sorted(ids["acme"] + ids["globex"] + ids["platform"])
    assert await pages(http, jobs["root"], tenant_id="globex") == ids["globex"]
    assert await pages(http, jobs["root"], tenant_id="platform") == ids["platform"]
    assert await pages(http, jobs["root"], kind="upkeep") == ids["platform"]
    for job_id in everything:  # by id, without naming the tenant
        response = await http.get(f"/api/v1/jobs/{job_id}", headers=jobs["root"])
        assert response.status_code == 200
    platform_job = await http.get(f"/api/v1/jobs/{ids['platform'][0]}", headers=jobs["root"])
    assert platform_job.json()["tenant_id"] is None


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"cursor": "not-a-cursor"}, 400),
        ({"cursor": "MjAyNi0wMS0wMXxub3QtYS11dWlk"}, 400),  # "2026-01-01|not-a-uuid"
        ({"status": "exploded"}, 422),
        ({"limit": 0}, 422),
        ({"limit": 201}, 422),
        ({"colour": "red"}, 422),
    ],
)
async def test_bad_parameters_are_problems(
    http: httpx.AsyncClient, jobs: dict[str, Any], params: dict[str, Any], status: int
) -> None:
    response = await http.get("/api/v1/jobs", params=params, headers=jobs["acme"])
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_in_process_worker_runs_what_the_api_process_submits(
    settings: Settings, make_token: TokenFactory
) -> None:
    settings = settings.model_copy(deep=True)
    settings.jobs.in_process_worker = True
    settings.jobs.poll_seconds = 1
    application = create_app(settings)
    root = bearer(make_token("admin", "*", sub="root"))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def upkeep_done() -> bool:
                response = await client.get(
                    "/api/v1/jobs", params={"tenant_id": "platform"}, headers=root
                )
                items = response.json()["items"]
                return any(
                    i["kind"] == "partitions.maintain" and i["status"] == "succeeded" for i in items
                )

            assert await eventually(upkeep_done, within=30)
