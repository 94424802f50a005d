"""SQL for tenants."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from psycopg import errors, sql
from psycopg.types.json import Jsonb

from auditline.domain.tenants import UPDATABLE, Tenant, TenantExists, TenantId
from auditline.storage.database import Connection, set_tenant

_COLUMNS = (
    "id, name, retention_days, archive_after_days, settings, created_at, updated_at, legal_hold"
)


async def create_tenant(
    conn: Connection,
    tenant: TenantId,
    *,
    name: str,
    retention_days: int,
    archive_after_days: int | None,
    settings: dict[str, Any],
    legal_hold: bool = False,
) -> Tenant:
    """Create *tenant*, its empty log and its pseudonym key, in the caller's transaction.

    The key is made by the column default (migration 0010) and never read back here.
    """
    try:
        async with conn.transaction():
            cur = await conn.execute(
                f"""INSERT INTO tenants (id, name, retention_days, archive_after_days, settings,
                                         legal_hold)
                    VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",  # noqa: S608
                (tenant, name, retention_days, archive_after_days, Jsonb(settings), legal_hold),
            )
            row = await cur.fetchone()
            await set_tenant(conn, tenant)
            await conn.execute("INSERT INTO tenant_log_heads (tenant_id) VALUES (%s)", (tenant,))
            await conn.execute("INSERT INTO tenant_secrets (tenant_id) VALUES (%s)", (tenant,))
    except errors.UniqueViolation as exc:
        raise TenantExists(tenant) from exc
    assert row is not None  # noqa: S101 - INSERT ... RETURNING returns the row
    return Tenant(**row)


async def list_tenants(conn: Connection, only: Collection[TenantId] | None = None) -> list[Tenant]:
    """All client tenants, or those whose id is in *only*, ordered by id.

    System tenants (the platform log) are never listed; they are reached by id.
    """
    cur = await conn.execute(
        f"""SELECT {_COLUMNS} FROM tenants
             WHERE NOT system AND (%(all)s OR id = ANY(%(only)s)) ORDER BY id""",  # noqa: S608
        {"all": only is None, "only": list(only or ())},
    )
    return [Tenant(**row) for row in await cur.fetchall()]


async def update_tenant(
    conn: Connection, tenant: TenantId, changes: dict[str, Any]
) -> tuple[Tenant, Tenant] | None:
    """Apply *changes* (a subset of :data:`UPDATABLE`) in the caller's transaction.

    Returns the tenant before and after, or None if it does not exist. The row is locked
    first, so the "before" is exactly what this update replaced; values equal to the
    current ones are not written.
    """
    unknown = changes.keys() - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM tenants WHERE id = %s FOR UPDATE",  # noqa: S608
        (tenant,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    before = Tenant(**row)
    changes = {k: v for k, v in changes.items() if getattr(before, k) != v}
    if not changes:  # nothing differs: no write, updated_at stays
        return before, before
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
        for column in changes
    )
    values = {k: Jsonb(v) if k == "settings" else v for k, v in changes.items()}
    cur = await conn.execute(
        sql.SQL("UPDATE tenants SET {}, updated_at = now() WHERE id = {} RETURNING {}").format(
            assignments, sql.Placeholder("_id"), sql.SQL(_COLUMNS)
        ),
        {**values, "_id": tenant},
    )
    row = await cur.fetchone()
    assert row is not None  # noqa: S101 - the row is locked by this transaction
    return before, Tenant(**row)


async def get_tenant(conn: Connection, tenant: TenantId) -> Tenant | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM tenants WHERE id = %s", (tenant,))  # noqa: S608
    row = await cur.fetchone()
    return None if row is None else Tenant(**row)


@dataclass(frozen=True, slots=True)
class MaskingSource:
    """What a tenant's masking rules are compiled from."""

    settings: dict[str, Any]
    """The tenant's settings, cut down to their ``masking`` member if they have one."""
    pseudonym_key: bytes | None = field(repr=False)
    """The tenant's key; None if its row is missing (e.g. a partial restore)."""


async def masking_source(conn: Connection, tenant: TenantId) -> MaskingSource | None:
    """The tenant's stored masking settings and pseudonym key; None if it does not exist.

    The one query that reads a tenant key. Points row-level security at *tenant* (the
    secrets table is under it), so it must run in a transaction of its own or the caller's.
    """
    await set_tenant(conn, tenant)
    cur = await conn.execute(
        """SELECT CASE WHEN t.settings ? 'masking'
                       THEN jsonb_build_object('masking', t.settings -> 'masking')
                       ELSE '{}'::jsonb END AS settings,
                  s.pseudonym_key
             FROM tenants t
             LEFT JOIN tenant_secrets s ON s.tenant_id = t.id AND s.tenant_id = %(tenant)s
            WHERE t.id = %(tenant)s""",
        {"tenant": tenant},
    )
    row = await cur.fetchone()
    if row is None:
        return None
    key = row["pseudonym_key"]
    return MaskingSource(row["settings"], None if key is None else bytes(key))
