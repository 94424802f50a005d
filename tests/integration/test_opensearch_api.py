"""The service with OpenSearch answering searches, against a real node: answers come from
the index (and only the tenant's own), removals reach it, lag shows in /metrics, and when
the node stops ingest goes on while searches fall back or answer 503."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

from auditline.api import health
from auditline.app import create_app
from auditline.cli import main
from auditline.config import Settings
from auditline.domain.events import Event, StoredEvent
from auditline.indexing.service import IndexingIncomplete, RebuildBusy, SearchIndexer
from auditline.jobs.service import JobContext
from auditline.opensearch import documents
from auditline.opensearch.backend import OpenSearchSearch
from auditline.opensearch.client import OpenSearchIndex, open_client
from auditline.search.backend import SearchUnavailable
from auditline.search.model import FacetRequest, PageRequest, SearchQuery
from auditline.search.query import parse
from auditline.search.routing import RoutedSearch
from auditline.services import Services
from auditline.storage import search_index as index_store
from auditline.storage.database import tenant_transaction
from auditline.storage.search.backend import PostgresSearch
from auditline.tasks import build_tasks
from auditline.tenancy.scope import for_system
from tests.conftest import TokenFactory, bearer
from tests.integration.opensearch_fixtures import node_settings
from tests.services.fixtures import Endpoint, start_opensearch
from tests.services.jvm import ServiceUnavailable, unavailable

ACME = for_system("acme", reason="tests")
GLOBEX = for_system("globex", reason="tests")


def with_opensearch(settings: Settings, endpoint: Endpoint, on_unavailable: str) -> Settings:
    settings.rate_limits.enabled = False
    # The tests run the indexer themselves, so that they know when the index has caught up.
    settings.jobs.in_process_worker = False
    settings.opensearch = node_settings(endpoint)
    settings.search.filter_backend = "opensearch"
    settings.search.text_backend = "opensearch"
    settings.search.on_unavailable = on_unavailable  # type: ignore[assignment]
    settings.search.retry_after_seconds = 7
    return settings


@dataclass
class Stack:
    http: httpx.AsyncClient
    services: Services
    headers: dict[str, dict[str, str]]

    @property
    def indexer(self) -> SearchIndexer:
        assert self.services.indexer is not None
        return self.services.indexer

    async def post(self, tenant: str, events: list[dict[str, Any]]) -> list[str]:
        response = await self.http.post(
            "/api/v1/logs/bulk", json={"events": events}, headers=self.headers[tenant]
        )
        assert response.status_code == 201, response.text
        return [str(i) for i in response.json()["ids"]]

    async def search(self, tenant: str, **params: str) -> httpx.Response:
        return await self.http.get(
            "/api/v1/logs", params={"limit": "100", **params}, headers=self.headers[tenant]
        )

    async def ids(self, tenant: str, **params: str) -> list[str]:
        response = await self.search(tenant, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["next_cursor"] is None
        assert {e["tenant_id"] for e in body["items"]} <= {tenant}
        return [e["id"] for e in body["items"]]


@asynccontextmanager
async def running(settings: Settings, make_token: TokenFactory) -> AsyncIterator[Stack]:
    """The app with acme and globex and a writer's token for each; its indices dropped at
    the end."""
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            platform = bearer(make_token("admin", "*", sub="root"))
            for tenant in ("acme", "globex"):
                response = await http.post(
                    "/api/v1/tenants", json={"id": tenant, "name": tenant}, headers=platform
                )
                assert response.status_code in (201, 409), response.text
            headers = {t: bearer(make_token("admin", t, sub=f"{t}-admin"))
                       for t in ("acme", "globex")}  # fmt: skip
            stack = Stack(http, services, headers)
            try:
                yield stack
            finally:
                if services.indexer is not None:
                    # A stopped node takes its indices with it.
                    with contextlib.suppress(SearchUnavailable):
                        await services.indexer.index.drop()


@pytest.fixture
async def stack(
    settings: Settings, opensearch: Endpoint, make_token: TokenFactory
) -> AsyncIterator[Stack]:
    async with running(with_opensearch(settings, opensearch, "503"), make_token) as stack:
        yield stack


def events(words: str, n: int, *, age: timedelta = timedelta(0)) -> list[dict[str, Any]]:
    at = datetime.now(UTC) - age
    return [
        {"action": "UPDATE", "user_id": f"u{i}", "message": f"{words} {i}",
         "timestamp": (at - timedelta(seconds=i)).isoformat(), "metadata": {"n": i}}
        for i in range(n)
    ]  # fmt: skip


async def test_searches_answer_from_the_index_and_only_with_the_tenants_events(
    stack: Stack,
) -> None:
    acme = await stack.post("acme", events("refund declined", 6))
    globex = await stack.post("globex", events("refund declined", 4))
    await stack.indexer.index_all()
    late = await stack.post("acme", events("refund declined", 1))  # not indexed yet

    # Answered by OpenSearch: the event PostgreSQL already holds is not among them.
    assert sorted(await stack.ids("acme", q="refunds")) == sorted(acme)
    assert sorted(await stack.ids("globex", q="refund", user_id="u1")) == [globex[1]]
    assert sorted(await stack.ids("acme", action="UPDATE")) == sorted(acme)
    await stack.indexer.index_all()
    assert sorted(await stack.ids("acme", q="refunds")) == sorted(acme + late)
    # Paging across the index with cursors: every event once, in order.
    first = (await stack.search("acme", q="declined", limit="3")).json()
    second = await stack.search("acme", q="declined", limit="3", cursor=first["next_cursor"])
    third = await stack.search("acme", q="declined", limit="3", cursor=second.json()["next_cursor"])
    paged = [e["id"] for page in (first, second.json(), third.json()) for e in page["items"]]
    assert paged == await stack.ids("acme", q="declined")
    assert len(paged) == 7


async def test_index_lag_is_in_metrics_until_the_indexer_catches_up(stack: Stack) -> None:
    await stack.post("acme", events("payment", 5))
    slow = SearchIndexer(
        stack.services.pool, stack.indexer.index, batch_size=2, max_batches=1,
        metrics=stack.services.metrics,
    )  # fmt: skip
    run = await slow.index_tenant(ACME)
    # 5 events and the tenant's creation record... whatever the log holds beyond 2.
    assert run.indexed == 2
    assert run.behind > 0

    def lag() -> tuple[float, float]:
        body = stack.services.metrics.render()[0].decode()
        values = {}
        for line in body.splitlines():
            if line.startswith("auditline_search_index_lag_") and 'tenant="_other"' in line:
                name, value = line.split(" ")
                values[name.split("{")[0]] = float(value)
        return (values["auditline_search_index_lag_events"],
                values["auditline_search_index_lag_seconds"])  # fmt: skip

    events_behind, seconds_behind = lag()
    assert events_behind == run.behind
    assert seconds_behind > 0
    response = await stack.http.get("/metrics")
    assert "auditline_search_index_lag_events" in response.text
    await stack.indexer.index_tenant(ACME)
    done = await slow.index_tenant(ACME)
    assert (done.indexed, done.behind) == (0, 0)
    assert lag() == (0.0, 0.0)


async def test_cleanup_removals_reach_the_index(stack: Stack) -> None:
    old = await stack.post("acme", events("invoice", 5, age=timedelta(days=100)))
    recent = await stack.post("acme", events("invoice", 3))
    other = await stack.post("globex", events("invoice", 2, age=timedelta(days=100)))
    await stack.indexer.index_all()
    for tenant in (ACME, GLOBEX):  # only sealed events may be removed
        await stack.services.sealer.seal_until_current(tenant, wait=True)
    response = await stack.http.delete("/api/v1/logs/cleanup", headers=stack.headers["acme"])
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] == 5

    # Until the indexer runs, the index still shows what PostgreSQL no longer holds...
    assert sorted(await stack.ids("acme", q="invoice")) == sorted(old + recent)
    runs = {r.tenant: r for r in await stack.indexer.index_all()}
    assert runs[ACME].removed_ranges >= 1
    assert runs[GLOBEX].removed_ranges == 0
    # ...then exactly what it holds; the other tenant's old events are untouched.
    assert sorted(await stack.ids("acme", q="invoice")) == sorted(recent)
    assert sorted(await stack.ids("globex", q="invoice")) == sorted(other)
    with psycopg.connect(stack.services.settings.database.url or "") as conn:
        flags = conn.execute(
            "SELECT DISTINCT search_propagated FROM removed_ranges WHERE tenant_id = 'acme'"
        ).fetchall()
    assert flags == [(True,)]
    again = {r.tenant: r for r in await stack.indexer.index_all()}
    assert again[ACME].removed_ranges == 0


@pytest.fixture
def own_node(tmp_path: Path) -> Any:
    """A node of this test's own, so that stopping it leaves the shared one alone."""
    try:
        service, endpoint = start_opensearch(tmp_path / "node")
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    try:
        yield service, endpoint
    finally:
        service.stop()


async def test_when_the_node_stops_ingest_goes_on_and_searches_fall_back_or_answer_503(
    settings: Settings, make_token: TokenFactory, own_node: Any
) -> None:
    service, endpoint = own_node
    async with running(with_opensearch(settings, endpoint, "postgres"), make_token) as stack:
        before = await stack.post("acme", events("card declined", 4))
        await stack.indexer.index_all()
        assert sorted(await stack.ids("acme", q="declined")) == sorted(before)

        def fallbacks() -> float:
            registry = stack.services.metrics.registry
            found = registry.get_sample_value("auditline_search_fallbacks_total",
                                              {"operation": "search"})  # fmt: skip
            return found or 0.0

        fallen_back = fallbacks()

        service.stop()  # mid-run
        during = await stack.post("acme", events("card declined", 2))  # ingest unaffected
        # PostgreSQL answers instead: every event, including those the index never saw.
        assert sorted(await stack.ids("acme", q="declined")) == sorted(before + during)
        assert fallbacks() == fallen_back + 1
        with pytest.raises(IndexingIncomplete) as failed:  # the job fails; the queue retries
            await stack.indexer.index_all()
        assert ACME in failed.value.failures  # (a tenant with nothing to write needs no node)
        assert all(isinstance(e, SearchUnavailable) for e in failed.value.failures.values())

    settings.search.on_unavailable = "503"
    async with running(settings, make_token) as stack:
        response = await stack.search("acme", q="declined")
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "7"
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("search-unavailable")
        # Structured searches were routed to OpenSearch too, so they answer 503 as well;
        # writes still succeed.
        assert (await stack.search("acme", action="UPDATE")).status_code == 503
        await stack.post("acme", events("card declined", 1))


async def test_the_scheduled_job_indexes_through_the_queue(
    settings: Settings, opensearch: Endpoint, make_token: TokenFactory
) -> None:
    settings = with_opensearch(settings, opensearch, "503")
    settings.jobs.in_process_worker = True  # the worker and the scheduler run in the app
    settings.opensearch.index_job_seconds = 1.0
    settings.opensearch.index_interval_seconds = 0.2
    async with running(settings, make_token) as stack:
        assert "search-index" in {s.name for s in build_tasks(stack.services).schedules}
        posted = await stack.post("acme", events("password reset", 3))

        def succeeded_jobs() -> int:
            with psycopg.connect(settings.database.url or "") as conn:
                row = conn.execute(
                    """SELECT count(*) FROM jobs
                        WHERE kind = 'search.index' AND status = 'succeeded'"""
                ).fetchone()
            return 0 if row is None else int(row[0])

        deadline = asyncio.get_running_loop().time() + 60
        while succeeded_jobs() < 2:  # the second one ran after the events were stored
            assert asyncio.get_running_loop().time() < deadline, "no search.index job ran"
            await asyncio.sleep(0.2)
        assert sorted(await stack.ids("acme", q="password")) == sorted(posted)


async def test_without_a_cluster_nothing_is_indexed_or_routed(app: FastAPI) -> None:
    services: Services = app.state.services
    assert services.settings.opensearch.url is None
    assert services.indexer is None
    assert "search-index" not in {s.name for s in build_tasks(services).schedules}
    assert isinstance(services.search.backend, PostgresSearch)
    with pytest.raises(ValueError, match=r"needs opensearch\.url"):
        Settings.model_validate(
            {**services.settings.model_dump(), "search": {"text_backend": "opensearch"}}
        )


async def test_reindex_restores_lost_documents_while_the_service_runs(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    posted = await stack.post("acme", events("report exported", 4))
    other = await stack.post("globex", events("report exported", 2))
    await stack.indexer.index_all()
    index = stack.indexer.index
    lost = await index.client.search(
        index=index.names.alias, routing="acme",
        body={"query": {"term": {"id": posted[0]}}, "size": 1},
    )  # fmt: skip
    [hit] = lost["hits"]["hits"]
    await index.client.delete(index=hit["_index"], id=hit["_id"], routing="acme", refresh=True)
    assert sorted(await stack.ids("acme", q="report")) == sorted(posted[1:])

    config = stack.services.settings
    monkeypatch.setenv("AUDITLINE_DATABASE__URL", config.database.url or "")
    monkeypatch.setenv("AUDITLINE_OPENSEARCH__URL", config.opensearch.url or "")
    monkeypatch.setenv("AUDITLINE_OPENSEARCH__INDEX_PREFIX", config.opensearch.index_prefix)
    monkeypatch.setenv("AUDITLINE_OPENSEARCH__REPLICAS", "0")
    args = ["reindex", "--tenant", "acme", "--data-dir", str(tmp_path)]
    assert await asyncio.to_thread(main, args) == 0
    assert "acme: " in capsys.readouterr().out

    assert sorted(await stack.ids("acme", q="report")) == sorted(posted)
    assert sorted(await stack.ids("globex", q="report")) == sorted(other)

    # The whole index, as a new generation behind the alias.
    rebuild = ["reindex", "--all", "--grace-seconds", "0", "--data-dir", str(tmp_path)]
    assert await asyncio.to_thread(main, rebuild) == 0
    assert "generation 2 is live" in capsys.readouterr().out
    assert await index.live_generation() == 2
    assert sorted(await stack.ids("acme", q="report")) == sorted(posted)
    assert sorted(await stack.ids("globex", q="report")) == sorted(other)

    # A repair limited to some days indexes those days' events only.
    [hit] = (
        await index.client.search(
            index=index.names.alias,
            routing="acme",
            body={"query": {"term": {"id": posted[0]}}, "size": 1},
        )
    )["hits"]["hits"]
    await index.client.delete(index=hit["_index"], id=hit["_id"], routing="acme", refresh=True)
    today = datetime.now(UTC).date()
    for first, last, restored in (("2001-01-01", "2001-01-31", False),
                                  (str(today - timedelta(days=1)), str(today), True)):  # fmt: skip
        window = ["reindex", "--tenant", "acme", "--from", first, "--to", last]
        assert await asyncio.to_thread(main, [*window, "--data-dir", str(tmp_path)]) == 0
        found = set(await stack.ids("acme", q="report"))
        assert (posted[0] in found) is restored
    backwards = ["reindex", "--all", "--from", "2026-02-01", "--to", "2026-01-01"]
    assert await asyncio.to_thread(main, [*backwards, "--data-dir", str(tmp_path)]) == 2


def test_reindex_needs_a_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUDITLINE_OPENSEARCH__URL", raising=False)
    assert main(["reindex", "--all", "--data-dir", str(tmp_path)]) == 2
    assert "AUDITLINE_OPENSEARCH__URL" in capsys.readouterr().err


async def test_rebuild_swaps_in_a_new_generation_while_ingest_and_searches_go_on(
    stack: Stack,
) -> None:
    index = stack.indexer.index
    names = index.names
    # The live generation has an old mapping (a field this version no longer has): the
    # rebuild is how the new one is rolled out.
    old = documents.template(names, 1, shards=1, replicas=0, live=True)
    old["template"]["mappings"]["properties"]["legacy"] = {"type": "keyword"}
    await index.client.indices.put_index_template(name=names.template(1), body=old)
    removed = await stack.post("acme", events("rebuild", 3, age=timedelta(days=100)))
    posted = {"acme": await stack.post("acme", events("rebuild", 20)),
              "globex": await stack.post("globex", events("rebuild", 10))}  # fmt: skip
    await stack.indexer.index_all()
    for tenant in (ACME, GLOBEX):
        await stack.services.sealer.seal_until_current(tenant, wait=True)
    cleanup = await stack.http.delete("/api/v1/logs/cleanup", headers=stack.headers["acme"])
    assert cleanup.json()["deleted"] == 3
    await stack.indexer.index_all()
    assert await index.live_generation() == 1

    stop = asyncio.Event()
    answers: list[int] = []

    async def ingest() -> None:
        while not stop.is_set():
            for tenant in ("acme", "globex"):
                posted[tenant] += await stack.post(tenant, events("rebuild", 3))
            await stack.indexer.index_all()  # the live indexer goes on too
            await asyncio.sleep(0.05)

    async def search() -> None:
        seen: set[str] = set()
        while not stop.is_set():
            response = await stack.search("acme", q="rebuild", limit="1000")
            assert response.status_code == 200, response.text
            found = {e["id"] for e in response.json()["items"]}
            assert seen <= found, "a search lost events it had already shown"
            assert not found & set(removed), "a removed event came back"
            assert len(found) == len(response.json()["items"]), "an event shown twice"
            seen = found
            answers.append(len(found))
            await asyncio.sleep(0.02)

    workers = [asyncio.create_task(ingest()), asyncio.create_task(search())]
    copied: list[tuple[int, int]] = []
    try:
        built = await stack.indexer.rebuild_all(
            on_progress=lambda done, total: copied.append((done, total)), grace_seconds=0.5
        )
        await asyncio.sleep(0.3)  # searches and ingest go on after the swap too
    finally:
        stop.set()
        await asyncio.gather(*workers)

    assert (built.generation, built.replaced) == (2, 1)
    assert built.removed_ranges >= 1
    assert copied
    assert copied[-1][0] >= 33
    assert len(answers) > 3
    await stack.indexer.index_all()
    for tenant, ids in posted.items():  # nothing lost, nothing doubled
        assert sorted(await stack.ids(tenant, q="rebuild", limit="1000")) == sorted(ids)
    # Only the new generation is left, read through the alias, with this version's mapping.
    aliased = await index.client.indices.get_alias(index=names.pattern)
    assert aliased
    assert all(name.startswith(f"{names.prefix}-events-g2-") for name in aliased)
    assert all(names.alias in body["aliases"] for body in aliased.values())
    mappings = await index.client.indices.get_mapping(index=names.alias)
    assert all("legacy" not in m["mappings"]["properties"] for m in mappings.values())
    templates = await index.client.indices.get_index_template(name=names.templates)
    assert [t["name"] for t in templates["index_templates"]] == [names.template(2)]
    # A new month's index joins the live generation, alias included.
    posted["acme"] += await stack.post("acme", events("rebuild", 1, age=timedelta(days=160)))
    await stack.indexer.index_all()
    assert sorted(await stack.ids("acme", q="rebuild", limit="1000")) == sorted(posted["acme"])


async def indexed(stack: Stack, tenant: str, ids: list[str]) -> int:
    """How many of *ids* the indices behind the read alias hold, whatever searches show."""
    index = stack.indexer.index
    found = await index.client.count(
        index=index.names.alias, routing=tenant,
        body={"query": {"bool": {"filter": [{"term": {"tenant_id": tenant}},
                                            {"terms": {"id": ids}}]}}},
    )  # fmt: skip
    return int(found["count"])


def removal_rows(stack: Stack, tenant: str) -> list[tuple[int, bool]]:
    """(first_seq, search_propagated) of every range removed from *tenant*'s log."""
    with psycopg.connect(stack.services.settings.database.url or "") as conn:
        rows = conn.execute(
            """SELECT first_seq, search_propagated FROM removed_ranges
                WHERE tenant_id = %s ORDER BY first_seq""",
            (tenant,),
        ).fetchall()
    return [(int(first), bool(flag)) for first, flag in rows]


async def test_a_rebuild_deletes_earlier_removals_before_it_holds_the_tenants(
    stack: Stack,
) -> None:
    """Removals recorded before the rebuild are deleted from the new generation by the
    unlocked step: with nothing arriving meanwhile the swap indexes and deletes nothing,
    and the ranges the live indexer had not reached yet are flagged with the swap."""
    removed = await stack.post("acme", events("archived", 4, age=timedelta(days=100)))
    kept = {"acme": await stack.post("acme", events("archived", 5)),
            "globex": await stack.post("globex", events("archived", 3))}  # fmt: skip
    await stack.indexer.index_all()
    for tenant in (ACME, GLOBEX):
        await stack.services.sealer.seal_until_current(tenant, wait=True)
    cleanup = await stack.http.delete("/api/v1/logs/cleanup", headers=stack.headers["acme"])
    assert cleanup.json()["deleted"] == 4
    ranges = removal_rows(stack, "acme")
    # The live indexer has not run since: the live generation still holds the events.
    assert ranges
    assert not any(flag for _, flag in ranges)
    assert await indexed(stack, "acme", removed) == 4

    built = await stack.indexer.rebuild_all(grace_seconds=0)

    assert (built.generation, built.replaced) == (2, 1)
    assert built.removed_ranges == len(ranges)
    assert (built.locked_events, built.locked_ranges) == (0, 0)
    assert await indexed(stack, "acme", removed) == 0
    for tenant, ids in kept.items():
        assert sorted(await stack.ids(tenant, q="archived")) == sorted(ids)
    # Deleted from what is live now, so the live indexer has nothing left to do for them.
    assert removal_rows(stack, "acme") == [(first, True) for first, _ in ranges]
    again = {r.tenant: r for r in await stack.indexer.index_all()}
    assert again[ACME].removed_ranges == 0


async def test_a_removal_during_the_rebuild_is_deleted_while_the_tenants_are_held(
    stack: Stack,
) -> None:
    """A removal committed after the unlocked deletion, of events the copy already put in
    the new generation, is deleted by the swap's locked step (and only it: the earlier
    removal is not deleted again there), so it does not come back with the swap."""
    earlier = await stack.post("acme", events("ledger", 2, age=timedelta(days=200)))
    later = await stack.post("acme", events("ledger", 3, age=timedelta(days=100)))
    kept = await stack.post("acme", events("ledger", 4))
    await stack.indexer.index_all()
    await stack.services.sealer.seal_until_current(ACME, wait=True)
    before = (datetime.now(UTC) - timedelta(days=150)).isoformat()
    first = await stack.http.delete(
        "/api/v1/logs/cleanup", params={"before": before}, headers=stack.headers["acme"]
    )
    assert first.json()["deleted"] == 2
    earlier_ranges = len(removal_rows(stack, "acme"))
    await stack.indexer.index_all()
    assert await indexed(stack, "acme", later) == 3

    pool = stack.services.pool
    rebuild: asyncio.Task[Any] | None = None
    try:
        # Holding acme's progress row stops the rebuild at its locked step, after the
        # unlocked copies and deletion: the removal below comes after all of them.
        async with tenant_transaction(pool, ACME) as held:
            assert await index_store.lock_progress(held, ACME) is not None
            rebuild = asyncio.create_task(stack.indexer.rebuild_all(grace_seconds=0))
            waiting = False
            for _ in range(600):
                async with pool.connection() as conn:
                    cur = await conn.execute(
                        """SELECT count(*) AS n FROM pg_stat_activity
                            WHERE %s = ANY(pg_blocking_pids(pid))""",
                        (held.info.backend_pid,),
                    )
                    row = await cur.fetchone()
                waiting = row is not None and row["n"] > 0
                if waiting or rebuild.done():
                    break
                await asyncio.sleep(0.1)
            assert waiting, "the rebuild never reached its locked step"
            second = await stack.http.delete("/api/v1/logs/cleanup", headers=stack.headers["acme"])
            assert second.json()["deleted"] == 3
        built = await rebuild
    finally:
        if rebuild is not None and not rebuild.done():
            rebuild.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rebuild

    ranges = removal_rows(stack, "acme")
    assert len(ranges) > earlier_ranges
    assert built.removed_ranges == len(ranges)
    assert built.locked_ranges == len(ranges) - earlier_ranges
    assert built.locked_events >= 1  # the removal's record in acme's log
    assert await stack.indexer.index.live_generation() == built.generation
    assert await indexed(stack, "acme", later) == 0
    assert await indexed(stack, "acme", earlier) == 0
    assert sorted(await stack.ids("acme", q="ledger")) == sorted(kept)
    assert all(flag for _, flag in ranges)


async def test_only_one_rebuild_runs_at_a_time(stack: Stack) -> None:
    async with stack.services.pool.connection() as held:
        assert await index_store.try_rebuild_lock(held)
        try:
            with pytest.raises(RebuildBusy):
                await stack.indexer.rebuild_all(grace_seconds=0)
        finally:
            await index_store.release_rebuild_lock(held)
    built = await stack.indexer.rebuild_all(grace_seconds=0)
    assert built.replaced in (0, 1)
    assert await stack.indexer.index.live_generation() == built.generation


async def test_a_tenant_repair_waits_for_no_full_rebuild_but_is_refused_during_one(
    stack: Stack,
) -> None:
    await stack.post("acme", events("quayside repaired", 3))
    async with stack.services.pool.connection() as held:
        assert await index_store.try_rebuild_lock(held)  # a full rebuild is running
        try:
            with pytest.raises(RebuildBusy):
                await stack.indexer.rebuild_tenant(ACME)
        finally:
            await index_store.release_rebuild_lock(held)
    async with stack.services.pool.connection() as other:  # another tenant's repair
        assert await index_store.try_rebuild_lock(other, shared=True)
        try:
            repaired = await stack.indexer.rebuild_tenant(ACME)
            with pytest.raises(RebuildBusy):  # and a full rebuild waits for repairs
                await stack.indexer.rebuild_all(grace_seconds=0)
        finally:
            await index_store.release_rebuild_lock(other, shared=True)
    assert repaired.indexed >= 3
    assert len(await stack.ids("acme", q="quayside")) == 3


async def test_statistics_come_from_postgres_whatever_answers_searches(stack: Stack) -> None:
    # Not indexed at all: OpenSearch knows none of them, PostgreSQL's rollups all.
    await stack.post("acme", events("login failed", 4))
    assert await stack.ids("acme", q="login") == []  # searches: OpenSearch
    response = await stack.http.get(
        "/api/v1/logs/stats", params={"q": "login"}, headers=stack.headers["acme"]
    )
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 4
    # The types say so: the OpenSearch backend does not offer statistics at all.
    assert not hasattr(OpenSearchSearch, "stats")
    assert not hasattr(RoutedSearch, "stats")


async def test_readiness_reports_the_index_lag_without_failing_on_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "_LAG_MAX_AGE_SECONDS", 0.0)
    await stack.indexer.index_all()
    await stack.post("acme", events("export started", 3))
    behind = await stack.http.get("/readyz")
    assert behind.status_code == 200
    lag = behind.json()["search_index"]
    assert lag["lag_events"] == 3
    assert lag["lag_seconds"] > 0
    assert lag["tenants_behind"] == 1
    await stack.indexer.index_all()
    caught_up = await stack.http.get("/readyz")
    assert caught_up.json()["search_index"] == {
        "lag_events": 0, "lag_seconds": 0.0, "tenants_behind": 0,
    }  # fmt: skip


async def test_a_month_that_removals_emptied_is_dropped_and_comes_back_for_a_late_event(
    stack: Stack,
) -> None:
    index = stack.indexer.index
    age = timedelta(days=100)
    old = {t: await stack.post(t, events("archived", 2, age=age)) for t in ("acme", "globex")}
    recent = await stack.post("acme", events("archived", 2))
    await stack.indexer.index_all()
    month = index.names.month(datetime.now(UTC) - age, await index.live_generation())

    async def months() -> set[str]:
        return set(await index.client.indices.get_alias(index=index.names.pattern))

    assert month in await months()
    for tenant in (ACME, GLOBEX):
        await stack.services.sealer.seal_until_current(tenant, wait=True)

    async def clean(tenant: str) -> None:
        response = await stack.http.delete("/api/v1/logs/cleanup", headers=stack.headers[tenant])
        assert response.json()["deleted"] == 2, response.text
        await stack.indexer.index_all()

    await clean("acme")  # globex's events still hold the month
    assert await stack.indexer.drop_empty_months() == []
    assert sorted(await stack.ids("globex", q="archived")) == sorted(old["globex"])
    await clean("globex")  # now nobody's
    assert await stack.indexer.drop_empty_months() == [month]
    assert month not in await months()
    assert sorted(await stack.ids("acme", q="archived")) == sorted(recent)  # this month stays

    late = await stack.post("acme", events("archived", 1, age=age))
    await stack.indexer.index_all()
    assert month in await months()
    assert sorted(await stack.ids("acme", q="archived")) == sorted(recent + late)


async def block_writes(stack: Stack, index_name: str, blocked: bool | None) -> None:
    await stack.indexer.index.client.indices.put_settings(
        index=index_name, body={"index.blocks.write": blocked}
    )


async def write_blocked(stack: Stack, index_name: str) -> bool:
    found = await stack.indexer.index.client.indices.get_settings(
        index=index_name, name="index.blocks.write", flat_settings=True
    )
    # An index without the setting is left out of the answer.
    return str(found.get(index_name, {}).get("settings", {}).get("index.blocks.write")) == "true"


async def test_a_tenant_whose_indexing_fails_does_not_hold_up_the_others(stack: Stack) -> None:
    index = stack.indexer.index
    age = timedelta(days=100)
    await stack.post("acme", events("held up", 1, age=age))
    await stack.indexer.index_all()
    month = index.names.month(datetime.now(UTC) - age, await index.live_generation())
    await block_writes(stack, month, True)  # acme's next batch is refused there
    try:
        await stack.post("acme", events("held up", 1, age=age))
        globex = await stack.post("globex", events("held up", 2))
        # acme comes first: its failure must not keep globex from being indexed...
        with pytest.raises(IndexingIncomplete) as failed:
            await stack.indexer.index_all()
        assert set(failed.value.failures) == {ACME}
        assert GLOBEX in {r.tenant for r in failed.value.runs}
        assert sorted(await stack.ids("globex", q="held")) == sorted(globex)
    finally:
        await block_writes(stack, month, None)
    # ...and acme catches up once the cause is gone.
    await stack.indexer.index_all()
    assert len(await stack.ids("acme", q="held")) == 2


async def test_a_write_block_never_outlives_a_drop_pass(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = stack.indexer.index
    age, older = timedelta(days=100), timedelta(days=160)
    await stack.post("acme", events("blocked", 2, age=age))
    kept = await stack.post("globex", events("blocked", 1, age=older))
    await stack.indexer.index_all()
    live = await index.live_generation()
    emptied = index.names.month(datetime.now(UTC) - age, live)
    full = index.names.month(datetime.now(UTC) - older, live)
    await stack.services.sealer.seal_until_current(ACME, wait=True)
    response = await stack.http.delete("/api/v1/logs/cleanup", headers=stack.headers["acme"])
    assert response.json()["deleted"] == 2, response.text
    await stack.indexer.index_all()

    # The count after the block fails (the cluster stops answering mid-pass): the block
    # is lifted on the way out.
    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise OpenSearchConnectionError("N/A", "connection refused", OSError())

    monkeypatch.setattr(index.client, "count", unreachable)
    with pytest.raises(SearchUnavailable):
        await stack.indexer.drop_empty_months()
    monkeypatch.undo()
    assert not await write_blocked(stack, emptied)

    # A block a crashed pass left on a month that is not empty is lifted by the next
    # pass, so a late event for that month is indexed.
    await block_writes(stack, full, True)
    assert await write_blocked(stack, full)
    assert await stack.indexer.drop_empty_months() == [emptied]
    assert not await write_blocked(stack, full)
    late = await stack.post("globex", events("blocked", 1, age=older))
    await stack.indexer.index_all()
    assert sorted(await stack.ids("globex", q="blocked")) == sorted(kept + late)


async def test_the_indexing_job_survives_a_failed_drop(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    posted = await stack.post("acme", events("housekeeping", 2))
    settings = stack.services.settings.opensearch
    settings.index_job_seconds = settings.index_interval_seconds = 0.01

    async def down(before: datetime) -> list[str]:
        raise SearchUnavailable("OpenSearch answered 503")

    monkeypatch.setattr(stack.indexer.index, "drop_empty_months", down)
    handler = build_tasks(stack.services).handlers["search.index"]

    async def report(value: Any) -> None:
        pass

    context = JobContext(job_id=uuid.uuid4(), tenant=None, attempt=1, _report=report)
    result = await handler(context, {})
    assert result["dropped_indices"] == []
    assert "503" in result["drop_failed"]
    assert result["indexed"] >= 2
    assert sorted(await stack.ids("acme", q="housekeeping")) == sorted(posted)


def stored_event(message: str, at: datetime, *, seq: int) -> StoredEvent:
    event = Event(
        tenant_id=ACME, id=uuid.uuid4(), timestamp=at, received_at=at, action="UPDATE",
        severity="INFO", metadata={}, leaf_hash=b"\0" * 32, message=message,
    )  # fmt: skip
    return StoredEvent(event=event, seq=seq)


async def test_an_upgrade_from_the_layout_before_generations_indexes_and_keeps_old_months(
    opensearch: Endpoint,
) -> None:
    settings = node_settings(opensearch)
    names = documents.IndexNames(settings.index_prefix)
    index = OpenSearchIndex(await open_client(settings), names, replicas=0)
    try:
        # What the version before generations put in place: one template for
        # <prefix>-events-* (priority 0) attaching the alias, and months named without one.
        legacy = documents.template(names, 1, shards=1, replicas=0, live=True)
        legacy["index_patterns"] = [names.pattern]
        del legacy["priority"]
        legacy["_meta"] = {}
        await index.client.indices.put_index_template(name=names.legacy_template, body=legacy)
        old = stored_event("upgrade kept", datetime(2026, 10, 5, tzinfo=UTC), seq=0)
        old_month = f"{names.prefix}-events-2026.10"
        await index.client.index(
            index=old_month, id=documents.doc_id(ACME, old.event.id), routing=ACME,
            body=documents.to_document(old), refresh=True,
        )  # fmt: skip

        assert await index.ensure_template() == 1
        legacy_left = await index.client.indices.exists_index_template(name=names.legacy_template)
        assert not legacy_left
        new = stored_event("upgrade new", datetime(2026, 10, 6, tzinfo=UTC), seq=1)
        await index.write([new])
        found = await index.client.search(
            index=names.alias, routing=ACME, body={"query": {"match_all": {}}, "size": 10}
        )
        assert {h["_index"] for h in found["hits"]["hits"]} == {
            old_month,
            names.month(new.event.timestamp, 1),
        }

        # reindex --all moves the alias off the old months and drops them.
        live, built = await index.begin_generation()
        await index.write([old, new], generation=built)
        await index.refresh(built)
        await index.swap(live, built)
        assert await index.drop_legacy() == [old_month]
        found = await index.client.search(
            index=names.alias, routing=ACME, body={"query": {"match_all": {}}, "size": 10}
        )
        rebuilt = {names.month(new.event.timestamp, 2)}
        assert {h["_index"] for h in found["hits"]["hits"]} == rebuilt
        assert found["hits"]["total"]["value"] == 2
    finally:
        try:
            await index.drop()
        finally:
            await index.close()


async def test_facets_past_what_is_indexed_count_what_is_and_say_gte(stack: Stack) -> None:
    """PostgreSQL answered the page (a fallback), so its watermark is its log head; the
    facets asked of OpenSearch then count below its own indexing progress, labelled."""
    await stack.post("acme", events("facet lag", 3))
    await stack.indexer.index_all()
    await stack.post("acme", events("facet lag", 2))  # stored, not indexed
    query = SearchQuery(q=parse("facet"))
    request = FacetRequest(("action",))
    routed = stack.services.search.backend
    assert isinstance(routed, RoutedSearch)
    postgres_page = await routed.primary.search(ACME, query, PageRequest(limit=1))
    opensearch = OpenSearchSearch(stack.indexer.index, stack.indexer.watermark)
    indexed = await stack.indexer.watermark(ACME)
    assert postgres_page.watermark > indexed

    ahead = await opensearch.facets(ACME, query, request, watermark=postgres_page.watermark)
    [facet] = ahead.facets
    assert facet.relation == "gte"
    assert [(v.key, v.count) for v in facet.values] == [("UPDATE", 3)]
    within = await opensearch.facets(ACME, query, request, watermark=indexed)
    assert within.facets[0].relation == "eq"
    assert [(v.key, v.count) for v in within.facets[0].values] == [("UPDATE", 3)]
