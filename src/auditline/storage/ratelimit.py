"""Token buckets in PostgreSQL, shared by every API process on the same database.

One statement per bucket: an UPSERT whose ``ON CONFLICT ... DO UPDATE ... WHERE`` refills the
bucket from the time elapsed since its last update and takes a token only if one is there.
The row lock the UPSERT takes makes concurrent requests from any number of processes queue
on that bucket for the length of one statement; no advisory locks, no read-modify-write
round trips. Time is the database's (``statement_timestamp()``), so clock skew between API
hosts cannot mint tokens. A refused request changes nothing; the same statement reads the
bucket's level from its snapshot to say when to retry.

The table is UNLOGGED (see migration 0002). Buckets idle for longer than the slowest
refill are full and are deleted now and then, which changes nothing for their owners.
"""

from __future__ import annotations

import logging

from psycopg_pool import AsyncConnectionPool

from auditline.config import RateBudget
from auditline.storage.database import Connection

log = logging.getLogger(__name__)

_TAKE = """
WITH taken AS (
    INSERT INTO rate_limit_buckets AS b (key, tokens, updated_at)
    VALUES (%(key)s, %(burst)s - 1, statement_timestamp())
    ON CONFLICT (key) DO UPDATE
       SET tokens = LEAST(%(burst)s, b.tokens + %(rate)s
                          * EXTRACT(EPOCH FROM statement_timestamp() - b.updated_at)) - 1,
           updated_at = statement_timestamp()
     WHERE LEAST(%(burst)s, b.tokens + %(rate)s
                 * EXTRACT(EPOCH FROM statement_timestamp() - b.updated_at)) >= 1
    RETURNING b.tokens
)
SELECT (SELECT tokens FROM taken) AS taken,
       (SELECT LEAST(%(burst)s, tokens + %(rate)s
                     * EXTRACT(EPOCH FROM statement_timestamp() - updated_at))
          FROM rate_limit_buckets WHERE key = %(key)s) AS level
"""


class PostgresBuckets:
    """The shared backend; see the module docstring."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        *,
        idle_seconds: float,
        sweep_every: int = 10_000,
    ) -> None:
        self._pool = pool
        self._idle_seconds = idle_seconds
        self._sweep_every = sweep_every
        self._calls = 0

    async def take(self, key: str, budget: RateBudget) -> tuple[bool, float]:
        self._calls += 1
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                _TAKE, {"key": key, "burst": float(budget.burst), "rate": budget.rate}
            )
            row = await cur.fetchone()
            if self._calls % self._sweep_every == 0:
                await self._sweep(conn)
        assert row is not None  # noqa: S101 - a SELECT of two scalars returns one row
        if row["taken"] is not None:
            return True, float(row["taken"])
        return False, float(row["level"] or 0.0)

    async def _sweep(self, conn: Connection) -> None:
        cur = await conn.execute(
            """DELETE FROM rate_limit_buckets
                WHERE updated_at < statement_timestamp() - make_interval(secs => %s)""",
            (self._idle_seconds,),
        )
        log.debug("swept %d idle rate-limit buckets", cur.rowcount)
