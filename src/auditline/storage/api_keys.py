"""SQL for API keys.

Everything but the lookup runs in a tenant transaction (row-level security shows only that
tenant's keys) and filters by tenant explicitly as well. The lookup by prefix is the one
query that cannot know the tenant yet: it goes through the SECURITY DEFINER function of
migration 0002, which returns at most the one row with that exact prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from auditline.domain.tenants import TenantId
from auditline.storage.database import Connection


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key as its tenant's admins see it: everything but the secret's hash."""

    tenant_id: str
    id: UUID
    prefix: str
    name: str
    scopes: list[str]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyCredential:
    """What authentication needs to check a presented key."""

    tenant_id: str
    id: UUID
    secret_hash: bytes
    name: str
    scopes: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


_COLUMNS = (
    "tenant_id, id, prefix, name, scopes, created_by, created_at, expires_at, revoked_at, "
    "revoked_by, last_used_at"
)


async def lock_tenant_keys(conn: Connection, tenant: TenantId) -> int | None:
    """Serialise key creation for *tenant* until commit; its active key count, None if absent."""
    cur = await conn.execute("SELECT 1 FROM tenants WHERE id = %s FOR UPDATE", (tenant,))
    if await cur.fetchone() is None:
        return None
    cur = await conn.execute(
        """SELECT count(*) AS n FROM api_keys
            WHERE tenant_id = %s AND revoked_at IS NULL
              AND (expires_at IS NULL OR expires_at > now())""",
        (tenant,),
    )
    row = await cur.fetchone()
    assert row is not None  # noqa: S101 - count(*) always returns a row
    return int(row["n"])


async def insert_api_key(
    conn: Connection,
    tenant: TenantId,
    *,
    key_id: UUID,
    prefix: str,
    secret_hash: bytes,
    name: str,
    scopes: list[str],
    created_by: str,
    expires_at: datetime | None,
) -> ApiKey:
    cur = await conn.execute(
        f"""INSERT INTO api_keys (tenant_id, id, prefix, secret_hash, name, scopes, created_by,
                                  expires_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",  # noqa: S608
        (tenant, key_id, prefix, secret_hash, name, scopes, created_by, expires_at),
    )
    row = await cur.fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING returns the row
    return ApiKey(**row)


async def list_api_keys(conn: Connection, tenant: TenantId) -> list[ApiKey]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = %s ORDER BY created_at, id",  # noqa: S608
        (tenant,),
    )
    return [ApiKey(**row) for row in await cur.fetchall()]


async def revoke_api_key(
    conn: Connection, tenant: TenantId, key_id: UUID, *, revoked_by: str
) -> tuple[ApiKey, bool] | None:
    """Revoke the key; returns it and whether this call revoked it, or None if absent."""
    cur = await conn.execute(
        f"""UPDATE api_keys SET revoked_at = now(), revoked_by = %s
             WHERE tenant_id = %s AND id = %s AND revoked_at IS NULL
         RETURNING {_COLUMNS}""",  # noqa: S608
        (revoked_by, tenant, key_id),
    )
    row = await cur.fetchone()
    if row is not None:
        return ApiKey(**row), True
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = %s AND id = %s",  # noqa: S608
        (tenant, key_id),
    )
    row = await cur.fetchone()
    return None if row is None else (ApiKey(**row), False)


async def find_key_by_prefix(conn: Connection, prefix: str) -> KeyCredential | None:
    cur = await conn.execute("SELECT * FROM auditline_api_key_by_prefix(%s)", (prefix,))
    row = await cur.fetchone()
    if row is None:
        return None
    return KeyCredential(**{**row, "secret_hash": bytes(row["secret_hash"])})


async def touch_api_key(conn: Connection, tenant: TenantId, key_id: UUID) -> None:
    await conn.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE tenant_id = %s AND id = %s",
        (tenant, key_id),
    )
