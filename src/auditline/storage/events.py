"""SQL for events: the batched write path and reads by id.

The write path for one tenant, inside the caller's transaction:

1. lock the tenant's log head (``FOR UPDATE``) and, in the same statement, find which of
   the batch's ids are already stored: the lock serialises writers of one tenant, so no
   other transaction can insert one of those ids until we commit;
2. COPY the new events into the connection's temporary staging table (binary, one round
   trip), with gap-free sequence numbers starting at the head;
3. move them into ``events`` and ``event_ids`` with one ``INSERT ... SELECT`` (row-level
   security checks every row: a wrong tenant fails loudly instead of storing nothing),
   and advance the head.

COPY goes through staging because PostgreSQL does not allow ``COPY FROM`` into a table
with row-level security.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from psycopg.types.json import Jsonb

from auditline.domain.events import Event, StoredEvent, TenantId, WriteResult
from auditline.integrity.leaf import canonical_ip
from auditline.storage.database import Connection

COLUMNS = (
    "tenant_id", "id", "seq", "timestamp", "received_at", "user_id", "actor_type",
    "session_id", "action", "resource_type", "resource_id", "ip_address", "user_agent",
    "before", "after", "changed_fields", "metadata", "severity", "message", "request_id",
    "outcome", "leaf_hash",
)  # fmt: skip
_COLUMN_LIST = ", ".join(COLUMNS)


class UnknownTenant(LookupError):
    """The tenant has no log (it does not exist)."""


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value, dumps=_dumps)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def copy_row(event: Event, seq: int) -> tuple[Any, ...]:
    return (
        event.tenant_id, event.id, seq, event.timestamp, event.received_at, event.user_id,
        event.actor_type, event.session_id, event.action, event.resource_type,
        event.resource_id, event.ip_address, event.user_agent, _jsonb(event.before),
        _jsonb(event.after), event.changed_fields, _jsonb(event.metadata), event.severity,
        event.message, event.request_id, event.outcome, event.leaf_hash,
    )  # fmt: skip


async def insert_events(conn: Connection, tenant: TenantId, events: Sequence[Event]) -> WriteResult:
    """Store the events of one tenant that are not stored yet; the caller commits.

    Idempotent per ``(tenant, id)``: an id already stored, or repeated within *events*, is
    reported as a duplicate and the first occurrence wins.
    """
    ids = [event.id for event in events]
    cur = await conn.execute(
        """SELECT next_seq,
                  ARRAY(SELECT id FROM event_ids WHERE tenant_id = %(t)s AND id = ANY(%(ids)s))
                      AS existing
             FROM tenant_log_heads WHERE tenant_id = %(t)s FOR UPDATE""",
        {"t": tenant, "ids": ids},
    )
    head = await cur.fetchone()
    if head is None:
        raise UnknownTenant(tenant)
    seen: set[UUID] = set(head["existing"])
    duplicates: list[UUID] = []
    inserted: dict[UUID, int] = {}
    rows = []
    next_seq: int = head["next_seq"]
    for event in events:
        if event.id in seen:
            duplicates.append(event.id)
            continue
        seen.add(event.id)
        inserted[event.id] = next_seq
        rows.append(copy_row(event, next_seq))
        next_seq += 1
    if rows:
        async with conn.cursor().copy(f"COPY staging_events ({_COLUMN_LIST}) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
        # One statement moves the staged rows into both tables, empties staging (so a later
        # tenant in the same transaction starts clean) and advances the log head.
        await conn.execute(
            f"""WITH moved AS (DELETE FROM staging_events RETURNING *),
                     ids AS (INSERT INTO event_ids (tenant_id, id, seq, timestamp)
                             SELECT tenant_id, id, seq, timestamp FROM moved),
                     head AS (UPDATE tenant_log_heads SET next_seq = %(next)s
                              WHERE tenant_id = %(t)s)
                INSERT INTO events ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM moved""",  # noqa: S608
            {"next": next_seq, "t": tenant},
        )
    return WriteResult(inserted=inserted, duplicates=duplicates)


async def get_event(
    conn: Connection, tenant: TenantId, event_id: UUID, *, user_id: str | None = None
) -> StoredEvent | None:
    """The event *event_id* of *tenant*, or None; with *user_id*, only if that user acted."""
    cur = await conn.execute(
        f"""SELECT {", ".join("e." + c for c in COLUMNS)}
              FROM event_ids i
              JOIN events e ON e.tenant_id = i.tenant_id AND e.timestamp = i.timestamp
                           AND e.id = i.id
             WHERE i.tenant_id = %(t)s AND i.id = %(id)s
               AND (%(user)s::text IS NULL OR e.user_id = %(user)s)""",  # noqa: S608
        {"t": tenant, "id": event_id, "user": user_id},
    )
    row = await cur.fetchone()
    return None if row is None else row_to_stored(row)


def row_to_stored(row: dict[str, Any]) -> StoredEvent:
    """Rebuild the domain objects from a row of ``events``."""
    fields = dict(row)
    seq = fields.pop("seq")
    fields["ip_address"] = canonical_ip(
        None if fields["ip_address"] is None else str(fields["ip_address"])
    )
    fields["leaf_hash"] = bytes(fields["leaf_hash"])
    fields["tenant_id"] = TenantId(fields["tenant_id"])
    return StoredEvent(event=Event(**fields), seq=seq)


async def partition_months(conn: Connection) -> set[datetime]:
    """First instants (UTC) of the months that have an events partition."""
    cur = await conn.execute(
        """SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS month
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'events'::regclass"""
    )
    return {row["month"] for row in await cur.fetchall()}


async def ensure_partition(conn: Connection, ts: datetime) -> str:
    """Create the month partition holding *ts* if missing; returns its name."""
    cur = await conn.execute("SELECT auditline_ensure_event_partition(%s) AS name", (ts,))
    row = await cur.fetchone()
    assert row is not None  # noqa: S101 - a function call always returns a row
    return str(row["name"])
