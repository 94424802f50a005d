"""Month partitions of ``events`` are created on demand, by any number of processes at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
from psycopg_pool import AsyncConnectionPool

from auditline.storage.database import Connection
from auditline.storage.events import ensure_partition, partition_months
from auditline.storage.migrations import LOCK_KEY


async def test_a_partition_waits_for_a_migration_run_in_progress(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    """Every migration run ends by granting the application role on every table, which
    rewrites the catalog row of ``events``; so does creating its first partition. Done at
    the same time, PostgreSQL fails one of them ("tuple concurrently updated"): the first
    start of a server with two API processes failed so. Creating a partition must wait
    for a migration run in progress (it holds the migration lock) instead."""
    month = datetime(2031, 1, 1, tzinfo=UTC)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as runner:
        await runner.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))

        async def create() -> str:
            async with pool.connection() as conn, conn.transaction():
                return await ensure_partition(conn, month)

        creating = asyncio.create_task(create())
        while not creating.done():  # until the creator is seen waiting for that lock
            cur = await runner.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if (await cur.fetchone() or (0,))[0]:
                break
            await asyncio.sleep(0.01)
        assert not creating.done(), "the partition was created during a migration run"
        async with pool.connection() as conn:
            assert month not in await partition_months(conn)
        await runner.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        assert await creating == "events_y2031m01"
    async with pool.connection() as conn:
        assert month in await partition_months(conn)
