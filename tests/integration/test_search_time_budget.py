"""A count's or a facet pass's time budget never loosens the read transaction's own
statement timeout, and the transaction's timeout comes back after it."""

from __future__ import annotations

import pytest
from psycopg_pool import AsyncConnectionPool

from auditline.storage.database import Connection, read_transaction
from auditline.storage.search.pages import time_budget
from tests.integration.conftest import ACME


async def statement_timeout(conn: Connection) -> str:
    cur = await conn.execute("SELECT current_setting('statement_timeout') AS t")
    row = await cur.fetchone()
    assert row is not None
    return str(row["t"])


@pytest.mark.parametrize(
    ("read_timeout_ms", "budget_ms", "inside"),
    [(50, 10_000, "50ms"), (10_000, 30, "30ms"), (400, 400, "400ms")],
)
async def test_the_budget_is_the_smaller_of_itself_and_the_reads_timeout(
    pool: AsyncConnectionPool[Connection], read_timeout_ms: int, budget_ms: int, inside: str
) -> None:
    async with read_transaction(pool, ACME, timeout_ms=read_timeout_ms) as conn:
        before = await statement_timeout(conn)
        async with time_budget(conn, budget_ms):
            assert await statement_timeout(conn) == inside
        assert await statement_timeout(conn) == before


async def test_without_a_timeout_around_it_the_budget_applies(
    pool: AsyncConnectionPool[Connection],
) -> None:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL statement_timeout = 0")
        async with time_budget(conn, 250):
            assert await statement_timeout(conn) == "250ms"
        assert await statement_timeout(conn) == "0"
