"""Connection pool and tenant-scoped transactions.

Every connection the API uses switches to the application role (so row-level security
applies), pins ``synchronous_commit = on`` (so a commit we acknowledge is on disk whatever
the server default), and has its own temporary staging table for COPY (COPY cannot write
into a table with row-level security; see ``storage.events``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection, AsyncCursor, errors, sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from auditline.config import DatabaseSettings
from auditline.domain.tenants import TenantId

log = logging.getLogger(__name__)

Connection = AsyncConnection[dict[str, Any]]
Cursor = AsyncCursor[dict[str, Any]]

# The address and the severity are staged as text: the binary COPY (``storage.events``)
# then sends them as they are, and the insert types them.
STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS staging_events (
    tenant_id text, id uuid, seq bigint, timestamp timestamptz, received_at timestamptz,
    user_id text, actor_type text, session_id text, action text, resource_type text,
    resource_id text, ip_address text, user_agent text, before jsonb, after jsonb,
    changed_fields text[], metadata jsonb, severity text, message text, request_id text,
    outcome text, leaf_hash bytea
) ON COMMIT DELETE ROWS
"""


def _configure(settings: DatabaseSettings, niceness: int = 0) -> Any:
    async def configure(conn: Connection) -> None:
        await conn.set_autocommit(True)
        if niceness:
            _lower_priority(conn, niceness)
        if settings.app_role:
            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(settings.app_role)))
        await conn.execute("SELECT set_config('synchronous_commit', 'on', false)")
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, false)",
            (str(settings.statement_timeout_ms),),
        )
        await conn.execute(STAGING_DDL)
        await conn.set_autocommit(False)

    return configure


def _lower_priority(conn: Connection, niceness: int) -> None:
    """Run this connection's server process *niceness* steps below normal priority, when
    it runs on this machine: connected through a Unix socket (the embedded PostgreSQL's
    way) and the process with its id here is a PostgreSQL one. Elsewhere (a TCP server,
    another process namespace) there is nothing to lower from here."""
    pid = conn.info.backend_pid
    if not conn.info.host.startswith("/"):
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            if not cmdline.read().startswith(b"postgres"):
                return
        os.setpriority(os.PRIO_PROCESS, pid, niceness)
    except OSError:
        log.warning("could not lower the priority of PostgreSQL process %s", pid)


async def open_pool(
    url: str,
    settings: DatabaseSettings,
    *,
    name: str = "auditline",
    min_size: int | None = None,
    max_size: int | None = None,
    checkout_seconds: float = 30.0,
    niceness: int = 0,
) -> AsyncConnectionPool[Connection]:
    """An open pool of application connections to *url* (sizes default to the settings').

    The API opens two: the write pool (ingest, access records, tenants, keys) and the read
    pool (searches, exports, statistics), so that reads can never take the connections
    ingest needs (``services.open_services``); the read pool's server processes run
    *niceness* steps below normal priority where that can be done (:func:`_lower_priority`).
    """
    pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
        url,
        min_size=settings.pool_min_size if min_size is None else min_size,
        max_size=settings.pool_max_size if max_size is None else max_size,
        kwargs={"row_factory": dict_row},
        configure=_configure(settings, niceness),
        # A connection broken by a database restart is noticed at checkout, not by the
        # request that happens to get it.
        check=AsyncConnectionPool.check_connection,
        open=False,
        name=name,
        timeout=checkout_seconds,
    )
    await pool.open(wait=True, timeout=30)
    return pool


@asynccontextmanager
async def tenant_transaction(
    pool: AsyncConnectionPool[Connection], tenant: TenantId
) -> AsyncIterator[Connection]:
    """A transaction in which row-level security shows *tenant*'s rows and no others."""
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, tenant)
        yield conn


async def set_tenant(conn: Connection, tenant: TenantId) -> None:
    """Point row-level security at *tenant* for the rest of the current transaction."""
    await conn.execute("SELECT set_config('auditline.tenant_id', %s, true)", (tenant,))


class ReadTimedOut(Exception):
    """A read's statement ran past its timeout and was cancelled; nothing was returned."""


@asynccontextmanager
async def read_transaction(
    pool: AsyncConnectionPool[Connection], tenant: TenantId, *, timeout_ms: int
) -> AsyncIterator[Connection]:
    """A ``REPEATABLE READ, READ ONLY`` transaction showing *tenant*'s rows, in which no
    statement may run longer than *timeout_ms* (``SET LOCAL``: the bound ends with the
    transaction, so a pooled connection never carries it to a write).

    The timeout is set with the tenant in one round trip. A cancelled statement leaves as
    :class:`ReadTimedOut`, which the API answers as a clear 503, not as a database failure.
    """
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            await conn.execute(
                "SELECT set_config('auditline.tenant_id', %s, true),"
                " set_config('statement_timeout', %s, true)",
                (tenant, str(timeout_ms)),
            )
            yield conn
    except errors.QueryCanceled as exc:
        raise ReadTimedOut(f"a read statement ran longer than {timeout_ms} ms") from exc
