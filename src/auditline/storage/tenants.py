"""SQL for tenants."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import errors
from psycopg.types.json import Jsonb

from auditline.domain.events import TenantId
from auditline.storage.database import Connection, set_tenant


@dataclass(frozen=True, slots=True)
class Tenant:
    id: TenantId
    name: str
    retention_days: int
    archive_after_days: int | None
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class TenantExists(Exception):
    """A tenant with that id already exists."""


_COLUMNS = "id, name, retention_days, archive_after_days, settings, created_at, updated_at"


async def create_tenant(
    conn: Connection,
    tenant: TenantId,
    *,
    name: str,
    retention_days: int,
    archive_after_days: int | None,
    settings: dict[str, Any],
) -> Tenant:
    """Create *tenant* and its empty log, in the caller's transaction."""
    try:
        async with conn.transaction():
            cur = await conn.execute(
                f"""INSERT INTO tenants (id, name, retention_days, archive_after_days, settings)
                    VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",  # noqa: S608
                (tenant, name, retention_days, archive_after_days, Jsonb(settings)),
            )
            row = await cur.fetchone()
            await set_tenant(conn, tenant)
            await conn.execute("INSERT INTO tenant_log_heads (tenant_id) VALUES (%s)", (tenant,))
    except errors.UniqueViolation as exc:
        raise TenantExists(tenant) from exc
    assert row is not None  # noqa: S101 - INSERT ... RETURNING returns the row
    return Tenant(**row)


async def list_tenants(conn: Connection, only: Collection[str] | None = None) -> list[Tenant]:
    """All tenants, or those whose id is in *only*, ordered by id."""
    cur = await conn.execute(
        f"""SELECT {_COLUMNS} FROM tenants
             WHERE %(all)s OR id = ANY(%(only)s) ORDER BY id""",  # noqa: S608
        {"all": only is None, "only": list(only or ())},
    )
    return [Tenant(**row) for row in await cur.fetchall()]


async def get_tenant(conn: Connection, tenant: str) -> Tenant | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM tenants WHERE id = %s", (tenant,))  # noqa: S608
    row = await cur.fetchone()
    return None if row is None else Tenant(**row)
