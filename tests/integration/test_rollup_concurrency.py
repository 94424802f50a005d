"""Rollup maintenance of one tenant takes turns, so concurrent writers never deadlock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from auditline.config import IngestSettings
from auditline.domain.events import Event, EventDraft
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
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


async def rollup_total(conn: Connection) -> int:
    cur = await conn.execute(
        "SELECT coalesce(sum(n), 0) AS n FROM event_rollups WHERE dim = 'total'"
    )
    return int((await cur.fetchone() or {"n": 0})["n"])


async def test_a_delete_waits_for_an_insert_of_the_same_tenant_to_commit(
    pool: AsyncConnectionPool[Connection],
) -> None:
    """An insert upserts the tenant's rollup rows in no fixed order, and so does a delete
    (retention). Two such statements of one tenant at once could take the same rows in
    opposite orders and deadlock: the benchmark's raw COPY from four connections did. The
    second must wait for the first's tenant turn before touching any rollup row."""
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, ACME)
        await insert_events(conn, ACME, events(40))
    async with pool.connection() as writer, pool.connection() as deleter:
        await set_tenant(writer, ACME)
        await insert_events(writer, ACME, events(40))  # uncommitted: holds the tenant's turn

        async def delete_some() -> None:
            async with deleter.transaction():
                await set_tenant(deleter, ACME)
                await deleter.execute("DELETE FROM events WHERE seq < 10")

        deleting = asyncio.create_task(delete_some())
        async with pool.connection() as observer:
            while not deleting.done():  # until the delete is seen waiting, and for what
                cur = await observer.execute(
                    "SELECT locktype FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()"
                )
                waits = [row["locktype"] for row in await cur.fetchall()]
                if waits:
                    break
                await asyncio.sleep(0.01)
        assert not deleting.done()
        assert waits == ["advisory"]  # not a row of the rollups, half-way through them
        await writer.commit()
        await deleting
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, ACME)
        assert await rollup_total(conn) == 80 - 10
