"""What a whole database holds, read and reset by an operator's tools (backup and restore).

These queries see every tenant at once: they run on a direct connection of the login role
(never the pool, which switches to the application role) and only make sense when that
role bypasses row-level security, which :func:`bypasses_row_security` tells the caller.
No function here takes a tenant: they are platform-wide by design, like ``pg_dump``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection, IsolationLevel, sql

DirectConnection = AsyncConnection[Any]


@asynccontextmanager
async def direct_connection(url: str) -> AsyncIterator[DirectConnection]:
    """An autocommit connection of the login role itself (no ``SET ROLE``)."""
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        yield conn


@asynccontextmanager
async def snapshot_transaction(url: str) -> AsyncIterator[tuple[DirectConnection, str]]:
    """A read-only repeatable-read transaction and its exported snapshot id.

    ``pg_dump --snapshot=<id>`` then copies exactly what this transaction sees, as long as
    the block has not ended: that is how a backup's counts and its dump agree.
    """
    async with await AsyncConnection.connect(url) as conn:
        await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
        await conn.set_read_only(True)
        async with conn.transaction():
            cur = await conn.execute("SELECT pg_export_snapshot()")
            row = await cur.fetchone()
            if row is None:  # pragma: no cover - the function always returns a row
                raise RuntimeError("pg_export_snapshot returned nothing")
            yield conn, str(row[0])


async def bypasses_row_security(conn: DirectConnection) -> bool:
    """True if the connected role sees every tenant's rows (superuser or BYPASSRLS)."""
    cur = await conn.execute(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def server_version(conn: DirectConnection) -> str:
    cur = await conn.execute("SELECT current_setting('server_version')")
    row = await cur.fetchone()
    return str(row[0]) if row else "unknown"


async def public_relations(conn: DirectConnection) -> list[str]:
    """The tables, views and sequences in ``public``: none is what restore calls empty."""
    cur = await conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
            ORDER BY c.relname"""
    )
    return [str(row[0]) for row in await cur.fetchall()]


async def applied_migrations(conn: DirectConnection) -> list[dict[str, Any]]:
    """``schema_migrations`` in version order; empty if the table does not exist."""
    cur = await conn.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    if not (row and row[0]):
        return []
    cur = await conn.execute(
        "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
    )
    return [
        {"version": int(version), "name": str(name), "checksum": str(checksum)}
        for version, name, checksum in await cur.fetchall()
    ]


async def table_row_counts(conn: DirectConnection) -> dict[str, int]:
    """Rows in every table of ``public``; a partitioned table counts its partitions' rows
    (the partitions themselves are not listed: which exist is an implementation detail)."""
    cur = await conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            ORDER BY c.relname"""
    )
    counts: dict[str, int] = {}
    for (name,) in await cur.fetchall():
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", name))
        result = await (await conn.execute(query)).fetchone()
        counts[str(name)] = int(result[0]) if result else 0
    return counts


async def event_counts_by_tenant(conn: DirectConnection) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT tenant_id, count(*) FROM events GROUP BY tenant_id ORDER BY tenant_id"
    )
    return {str(tenant): int(count) for tenant, count in await cur.fetchall()}


async def ensure_role(conn: DirectConnection, role: str) -> None:
    """Create the application role if missing, as ``migrate`` would, so the privileges a
    dump grants to it can be restored; the connected role becomes a member of it."""
    cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    if await cur.fetchone() is None:
        await conn.execute(
            sql.SQL("CREATE ROLE {} NOLOGIN NOBYPASSRLS").format(sql.Identifier(role))
        )
    await conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))


async def drop_public_schema(conn: DirectConnection) -> None:
    """Remove everything the service keeps (``restore --force``): it all lives in ``public``."""
    await conn.execute("DROP SCHEMA public CASCADE")
    await conn.execute("CREATE SCHEMA public")
