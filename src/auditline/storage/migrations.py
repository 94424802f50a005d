"""Versioned schema migrations: numbered SQL files applied once each, in order.

Several processes may start at once (API replicas, a worker, a CLI command): the whole run
holds a session advisory lock, so exactly one applies a migration and the others wait and
then find nothing left to do. Each file runs in its own transaction together with its row
in ``schema_migrations``, so a failed migration leaves no half-applied state. A checksum
catches a file edited after it was applied.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

# "AUDITL": arbitrary, fixed, shared by every process. Partition creation takes it too
# (migration 0006), so no partition is created while a migration run changes the catalog.
LOCK_KEY = 0x41554449544C


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    """The database's schema history disagrees with the migrations shipped in this build."""


def available_migrations() -> list[Migration]:
    """The migration files shipped in the package, ordered by version."""
    found = []
    for entry in (resources.files("auditline.storage") / "migrations").iterdir():
        if entry.name.endswith(".sql"):
            version, _, rest = entry.name.partition("_")
            found.append(Migration(int(version), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    if len({m.version for m in found}) != len(found):
        raise MigrationError("two migration files share a version number")
    return found


async def migrate(url: str, *, app_role: str | None, up_to: int | None = None) -> list[int]:
    """Bring the database at *url* up to date; returns the versions applied by this call.

    *app_role*, when given, is created if missing and granted exactly what the service
    needs: data access, no DDL, no BYPASSRLS. *up_to* stops after that version (for tests
    of a migration's effect on data stored before it).
    """
    applied: list[int] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            cur = await conn.execute("SELECT version, checksum FROM schema_migrations")
            done: dict[int, str] = dict(await cur.fetchall())
            for migration in available_migrations():
                if up_to is not None and migration.version > up_to:
                    break
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version} ({migration.name}) was changed "
                            "after it was applied; add a new migration instead"
                        )
                    continue
                log.info("applying migration %04d %s", migration.version, migration.name)
                async with conn.transaction():
                    await conn.execute(migration.sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied.append(migration.version)
            if app_role:
                await _grant_app_role(conn, app_role)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return applied


async def _grant_app_role(conn: psycopg.AsyncConnection[tuple[object, ...]], role: str) -> None:
    ident = sql.Identifier(role)
    async with conn.transaction():
        cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if await cur.fetchone() is None:
            await conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOBYPASSRLS").format(ident))
        statements = [
            "GRANT {role} TO CURRENT_USER",
            "GRANT USAGE ON SCHEMA public TO {role}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}",
            "REVOKE ALL ON schema_migrations FROM {role}",
            "GRANT SELECT ON schema_migrations TO {role}",
        ]
        for statement in statements:
            await conn.execute(sql.SQL(statement).format(role=ident))
