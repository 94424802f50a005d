"""Rollup counting never makes a tenant's writers wait for each other (migration 0021)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from psycopg import errors
from psycopg_pool import AsyncConnectionPool

from auditline.config import IngestSettings
from auditline.domain.events import Event, EventDraft
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from auditline.storage import retention
from auditline.storage import rollups as store
from auditline.storage.database import Connection, set_tenant
from auditline.storage.events import insert_events

ACME = TenantId("acme")


def events(n: int) -> list[Event]:
    drafts = [
        EventDraft(action=f"ACT{i % 5}", user_id=f"u{i % 7}", resource_type="doc",
                   resource_id=f"d{i % 11}", severity="INFO")
        for i in range(n)
    ]  # fmt: skip
    return prepare_events(ACME, drafts, limits=IngestSettings(), now=datetime.now(UTC))


async def rollup_total(conn: Connection, table: str = "event_rollup_rows") -> int:
    cur = await conn.execute(
        f"SELECT coalesce(sum(n), 0) AS n FROM {table} WHERE dim = 'total'"  # noqa: S608
    )
    return int((await cur.fetchone() or {"n": 0})["n"])


async def test_writers_and_folds_of_one_tenant_never_wait_for_each_other(
    pool: AsyncConnectionPool[Connection],
) -> None:
    """The rollup triggers only append deltas (migration 0021), so an uncommitted insert
    holds nothing a delete (retention) or a fold of the same tenant needs: before, the
    two statements took turns on the tenant's rollup rows, and a delete waited for the
    insert's commit. Counts stay exact throughout, folded or not."""
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, ACME)
        await insert_events(conn, ACME, events(40))
    async with pool.connection() as writer, pool.connection() as other:
        await set_tenant(writer, ACME)
        await insert_events(writer, ACME, events(40))  # uncommitted

        async def delete_some() -> None:
            async with other.transaction():
                await set_tenant(other, ACME)
                await other.execute("DELETE FROM events WHERE seq < 10")

        await asyncio.wait_for(delete_some(), timeout=30)  # waits for nothing
        async with other.transaction():
            await set_tenant(other, ACME)
            moved = await asyncio.wait_for(store.fold(other, ACME), timeout=30)
            assert moved is not None
            assert moved > 0  # the committed deltas, not the writer's
            assert await rollup_total(other) == 40 - 10
        await writer.commit()
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, ACME)
        assert await rollup_total(conn) == 80 - 10
        assert await store.fold(conn, ACME) is not None
        assert await rollup_total(conn, "event_rollups") == 80 - 10
        cur = await conn.execute("SELECT count(*) AS n FROM event_rollup_deltas")
        assert (await cur.fetchone() or {})["n"] == 0


async def test_a_tenant_being_folded_is_skipped_by_a_second_fold(
    pool: AsyncConnectionPool[Connection],
) -> None:
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, ACME)
        await insert_events(conn, ACME, events(20))
    async with pool.connection() as first, pool.connection() as second:
        async with first.transaction():
            await set_tenant(first, ACME)
            assert await store.fold(first, ACME) is not None  # holds the tenant until commit
            async with second.transaction():
                await set_tenant(second, ACME)
                assert await store.fold(second, ACME) is None
        async with second.transaction():
            await set_tenant(second, ACME)
            assert await store.fold(second, ACME) == 0  # the first moved them all
            assert await rollup_total(second, "event_rollups") == 20


async def test_forgetting_a_month_waits_for_a_fold_in_flight(
    pool: AsyncConnectionPool[Connection],
) -> None:
    """Retention's ``forget_rollups`` and the fold take the same tenant lock (its key is
    written in both, Python and migration 0021): a fold in flight could otherwise write a
    dropped month's counts back after they were forgotten."""
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, ACME)
        await insert_events(conn, ACME, events(10))
        assert await store.fold(conn, ACME)  # folded: the fold below locks no row
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month_end = (month + timedelta(days=32)).replace(day=1)
    async with pool.connection() as folding, pool.connection() as forgetting:
        async with folding.transaction():
            await set_tenant(folding, ACME)
            assert await store.fold(folding, ACME) == 0  # holds the tenant's lock
            async with forgetting.transaction():
                await set_tenant(forgetting, ACME)
                await forgetting.execute("SET LOCAL lock_timeout = '200ms'")
                with pytest.raises(errors.LockNotAvailable):
                    await retention.forget_rollups(forgetting, ACME, month, month_end)
        async with forgetting.transaction():  # once the fold committed, it goes through
            await set_tenant(forgetting, ACME)
            await retention.forget_rollups(forgetting, ACME, month, month_end)
            assert await rollup_total(forgetting) == 0
