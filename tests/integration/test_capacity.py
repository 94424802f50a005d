"""Reads never starve writes (issue #17): admission slots, separate pools, statement timeouts.

A read is held *in the database* by making its query wait for an advisory lock this test
holds: the read pool's connection is taken and the statement is running, as with a slow
query, until the test lets go. Nothing asserts on time: each test asserts what completes
while the reads are held, and what is refused.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from auditline.config import ReadSettings, Settings
from auditline.storage.search import pages
from tests.conftest import TokenFactory, bearer

pytestmark = pytest.mark.usefixtures("tenants")

HOLD = 417_017  # the advisory lock key a held read waits for
READS = 3  # read slots per process in these tests
PROBLEM = "application/problem+json"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Two write connections, fewer than the reads held: without separate pools, the held
    # reads would take every connection ingest needs.
    settings.database.pool_max_size = 2
    settings.reads = ReadSettings(
        max_concurrent=READS,
        max_concurrent_heavy=1,
        queue_seconds=0.05,
        retry_after_seconds=2,
        statement_timeout_ms=20_000,
        backend_niceness=7,
    )
    return settings


@pytest.fixture
def lock(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """Holds the advisory lock every patched read waits for; released at the end."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (HOLD,))
        yield conn
        conn.execute("SELECT pg_advisory_unlock_all()")


@pytest.fixture
def slow_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every search page and export batch first waits, in its read transaction, for the
    lock: a read blocked in the database, holding its connection, as a slow query does."""

    def waiting(original: Any) -> Any:
        async def wait_then_read(conn: Any, *args: Any, **kwargs: Any) -> Any:
            await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (HOLD,))
            return await original(conn, *args, **kwargs)

        return wait_then_read

    monkeypatch.setattr(pages, "search_page", waiting(pages.search_page))
    monkeypatch.setattr(pages, "export_lines", waiting(pages.export_lines))


async def _blocked_reads(database_url: str, count: int) -> None:
    """Return once *count* statements are waiting for the advisory lock (bounded polls)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for _ in range(400):
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone()
            if row is not None and row[0] >= count:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} reads ever waited in the database")


def _events(database_url: str, tenant: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE tenant_id = %s", (tenant,)).fetchone()
    assert row is not None
    return int(row[0])


def _assert_refused(response: httpx.Response, kind: str) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "2"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://auditline.dev/problems/{kind}"
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@pytest.mark.usefixtures("slow_reads")
async def test_ingest_is_acknowledged_while_every_read_slot_is_held_in_the_database(
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    lock: psycopg.Connection[Any],
    database_url: str,
) -> None:
    auditor = bearer(make_token("auditor", "acme"))
    writer = bearer(make_token("user", "acme", sub="svc"))
    held = [
        asyncio.create_task(
            client.get("/api/v1/logs", params={"tenant_id": "acme"}, headers=auditor)
        )
        for _ in range(READS)
    ]
    await _blocked_reads(database_url, READS)

    # Ingest, single and bulk, is acknowledged while every read is held in the database.
    single = asyncio.create_task(
        client.post("/api/v1/logs", json={"action": "LOGIN"}, headers=writer)
    )
    bulk = asyncio.create_task(
        client.post("/api/v1/logs/bulk", json={"events": [{"action": "VIEW"}] * 40}, headers=writer)
    )
    # The timeout only breaks a deadlock (without separate pools the writes wait for the
    # held reads' connections); what is asserted is that they finished while held.
    done, _ = await asyncio.wait({single, bulk}, timeout=20)
    assert done == {single, bulk}
    assert single.result().status_code == 201, single.result().text
    assert bulk.result().status_code == 201, bulk.result().text
    assert not any(task.done() for task in held)

    # One read more is refused at once, and changes nothing: no access record.
    before = _events(database_url, "acme")
    refused = await client.get("/api/v1/logs", params={"tenant_id": "acme"}, headers=auditor)
    _assert_refused(refused, "overloaded")
    stats = await client.get("/api/v1/logs/stats", params={"tenant_id": "acme"}, headers=auditor)
    _assert_refused(stats, "overloaded")
    assert _events(database_url, "acme") == before
    assert not any(task.done() for task in held)

    lock.execute("SELECT pg_advisory_unlock(%s)", (HOLD,))
    answered = await asyncio.gather(*held)
    assert [r.status_code for r in answered] == [200] * READS
    assert _events(database_url, "acme") == before + READS  # each answered read recorded
    again = await client.get("/api/v1/logs", params={"tenant_id": "acme"}, headers=auditor)
    assert again.status_code == 200  # the slots were given back


@pytest.mark.usefixtures("slow_reads")
async def test_an_export_holds_a_heavy_slot_so_statistics_wait_but_searches_do_not(
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    lock: psycopg.Connection[Any],
    database_url: str,
) -> None:
    auditor = bearer(make_token("auditor", "acme"))
    await client.post(
        "/api/v1/logs", json={"action": "LOGIN"}, headers=bearer(make_token("user", "acme"))
    )
    export = asyncio.create_task(
        client.get(
            "/api/v1/logs/export", params={"tenant_id": "acme", "format": "ndjson"}, headers=auditor
        )
    )
    await _blocked_reads(database_url, 1)

    stats = await client.get("/api/v1/logs/stats", params={"tenant_id": "acme"}, headers=auditor)
    body = _assert_refused(stats, "overloaded")
    assert "exports and statistics" in body["detail"]
    second = await client.get("/api/v1/logs/export", params={"tenant_id": "acme"}, headers=auditor)
    assert "running as many exports as it admits" in _assert_refused(second, "overloaded")["detail"]
    # A search has its own slots (one of three is the export's): it is not refused. It
    # is held like the export, so it is only checked to be waiting in the database.
    search = asyncio.create_task(
        client.get("/api/v1/logs", params={"tenant_id": "acme"}, headers=auditor)
    )
    await _blocked_reads(database_url, 2)

    lock.execute("SELECT pg_advisory_unlock(%s)", (HOLD,))
    exported, searched = await asyncio.gather(export, search)
    assert exported.status_code == 200
    assert '"LOGIN"' in exported.text
    assert searched.status_code == 200
    # The export gave its slots back once its stream ended.
    stats = await client.get("/api/v1/logs/stats", params={"tenant_id": "acme"}, headers=auditor)
    assert stats.status_code == 200, stats.text


@pytest.fixture
def short_timeouts(settings: Settings) -> Settings:
    settings.reads.statement_timeout_ms = 300
    settings.reads.export_statement_timeout_ms = 300
    settings.database.statement_timeout_ms = 0  # no session-wide bound: only the read's own
    return settings


@pytest.mark.usefixtures("slow_reads", "short_timeouts")
async def test_a_read_past_its_statement_timeout_is_a_clear_503_and_changes_nothing(
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    lock: psycopg.Connection[Any],
    database_url: str,
) -> None:
    auditor = bearer(make_token("auditor", "acme"))
    before = _events(database_url, "acme")
    for path in ("/api/v1/logs", "/api/v1/logs/export"):
        read = asyncio.create_task(client.get(path, params={"tenant_id": "acme"}, headers=auditor))
        # The lock is never released here: only the statement timeout can end the read
        # (the wait's own timeout only keeps a failing test from hanging).
        done, _ = await asyncio.wait({read}, timeout=20)
        assert done == {read}
        response = read.result()
        body = _assert_refused(response, "read-timeout")
        assert body["title"] == "Read timed out"
        assert "300 ms" in body["detail"]
    assert _events(database_url, "acme") == before  # nothing answered, nothing recorded

    lock.execute("SELECT pg_advisory_unlock(%s)", (HOLD,))
    # The connections went back to the pool clean: the next reads are answered.
    for path in ("/api/v1/logs", "/api/v1/logs/export"):
        response = await client.get(path, params={"tenant_id": "acme"}, headers=auditor)
        assert response.status_code == 200, response.text
    metrics = (await client.get("/metrics")).text
    assert "auditline_reads_timed_out_total 2.0" in metrics


async def test_the_statement_timeout_is_local_to_the_read_transaction(
    client: httpx.AsyncClient, make_token: TokenFactory, settings: Settings
) -> None:
    """The read bound (SET LOCAL) never stays on a pooled connection: after a read, its
    connection is back at the session's own timeout."""
    auditor = bearer(make_token("auditor", "acme"))
    assert (
        await client.get("/api/v1/logs", params={"tenant_id": "acme"}, headers=auditor)
    ).status_code == 200
    pool = client._transport.app.state.services.read_pool  # type: ignore[attr-defined]
    async with pool.connection() as conn:
        row = await (await conn.execute("SHOW statement_timeout")).fetchone()
    assert row is not None
    assert row["statement_timeout"] == f"{settings.database.statement_timeout_ms // 1000}s"


async def test_reads_postgresql_processes_run_below_the_writes(app: FastAPI) -> None:
    """When PostgreSQL runs here, an export's query yields the CPU to ingest's commits."""
    services = app.state.services
    async with services.read_pool.connection() as read, services.pool.connection() as write:
        assert os.getpriority(os.PRIO_PROCESS, read.info.backend_pid) == 7
        assert os.getpriority(os.PRIO_PROCESS, write.info.backend_pid) == 0
