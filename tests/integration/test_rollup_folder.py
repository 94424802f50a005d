"""The folder moves every tenant's rollup deltas into the counters, in the background."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from auditline.config import DatabaseSettings, IngestSettings
from auditline.domain.events import EventDraft
from auditline.domain.tenants import TenantId
from auditline.indexing.rollups import RollupFolder
from auditline.ingest.prepare import prepare_events
from auditline.metrics import Metrics
from auditline.storage import rollups as rollups_store
from auditline.storage.database import Connection, open_pool, tenant_transaction
from auditline.storage.events import insert_events
from tests.conftest import TokenFactory, bearer
from tests.integration.conftest import ACME, GLOBEX


def counts(url: str) -> tuple[int, dict[str, int]]:
    """Deltas left, and each tenant's folded total."""
    with psycopg.connect(url) as conn:
        left = conn.execute("SELECT count(*) FROM event_rollup_deltas").fetchone()
        totals = conn.execute(
            "SELECT tenant_id, sum(n) FROM event_rollups WHERE dim = 'total' GROUP BY 1"
        ).fetchall()
    assert left is not None
    return left[0], {t: int(n) for t, n in totals}


async def write(pool: AsyncConnectionPool[Connection], tenant: TenantId, n: int) -> None:
    drafts = [EventDraft(action="CREATE", user_id=f"u{i % 3}") for i in range(n)]
    events = prepare_events(tenant, drafts, limits=IngestSettings(), now=datetime.now(UTC))
    async with tenant_transaction(pool, tenant) as conn:
        await insert_events(conn, tenant, events)


async def test_fold_all_folds_every_tenant_once(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    metrics = Metrics()
    folder = RollupFolder(pool, interval=3600, metrics=metrics)  # never started: on demand
    await write(pool, ACME, 5)
    await write(pool, GLOBEX, 3)
    await write(pool, ACME, 2)
    left, folded = counts(database_url)
    assert left > 0
    assert folded == {}  # the writes updated no counter
    moved = await folder.fold_all()
    assert moved > 0
    assert counts(database_url) == (0, {ACME: 7, GLOBEX: 3})
    assert await folder.fold_all() == 0
    assert metrics.registry.get_sample_value("auditline_rollup_deltas_folded_total") == moved


async def test_the_service_folds_what_ingest_appends(
    client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory, database_url: str
) -> None:
    writer = bearer(make_token("user", tenants[0]))
    for i in range(6):
        response = await client.post("/api/v1/logs", json={"action": "CREATE", "message": str(i)},
                                     headers=writer)  # fmt: skip
        assert response.status_code == 201
    for _ in range(200):  # ingest.rollup_fold_seconds is 0.5 by default
        left, totals = counts(database_url)
        if left == 0 and totals.get(tenants[0]) == 6:
            break
        await asyncio.sleep(0.05)
    left, totals = counts(database_url)
    assert left == 0
    assert totals[tenants[0]] == 6


async def test_a_failed_fold_is_logged_and_retried_at_the_next_tick(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await open_pool(database_url, DatabaseSettings(pool_min_size=1, pool_max_size=1))
    metrics = Metrics()
    folder = RollupFolder(pool, interval=0.01, metrics=metrics)
    await pool.close()  # every fold fails from here on
    with caplog.at_level(logging.WARNING, logger="auditline.indexing.rollups"):
        await folder.start()
        for _ in range(500):
            if len(caplog.records) >= 2:
                break
            await asyncio.sleep(0.01)
        await folder.close()
    assert len(caplog.records) >= 2  # the task went on after the first failure
    assert all("folding rollup deltas failed" in r.getMessage() for r in caplog.records)
    failures = metrics.registry.get_sample_value("auditline_rollup_fold_failures_total")
    assert failures == len(caplog.records)


async def test_a_tenant_whose_fold_fails_does_not_hold_back_the_others(
    pool: AsyncConnectionPool[Connection], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await write(pool, ACME, 2)
    await write(pool, GLOBEX, 3)
    real_fold = rollups_store.fold

    async def fold(conn: Connection, tenant: TenantId) -> int | None:
        if tenant == ACME:
            raise RuntimeError("acme's fold failed")
        return await real_fold(conn, tenant)

    monkeypatch.setattr(rollups_store, "fold", fold)  # acme sorts first: it fails first
    with pytest.raises(RuntimeError, match="acme's fold failed"):
        await RollupFolder(pool, interval=3600).fold_all()
    left, folded = counts(database_url)
    assert left > 0  # acme's deltas, still there
    assert folded == {GLOBEX: 3}
