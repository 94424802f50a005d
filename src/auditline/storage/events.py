"""SQL for events: the batched write path and reads by id.

The write path for one tenant, inside the caller's transaction, comes in two shapes with
the same guarantees (tested against each other):

* **Small batches** (up to ``SMALL_BATCH`` events: single events, group-commit groups)
  are two statements that never wait for each other's results, so the group-commit
  writer sends a whole group in one pipeline, one round trip (``send_insert``): lock the
  tenant's log head (``FOR UPDATE``), then one statement that reads the batch from column
  arrays, skips ids already stored (its snapshot is taken after the lock, so no other
  transaction can store one of them until we commit) and repeated ones (the first
  occurrence wins), numbers the rest from the head without gaps, inserts them into
  ``events`` and ``event_ids`` and advances the head.
* **Large batches** (``copy_insert``) lock the head and find the stored ids in one
  statement, COPY the new events with their sequence numbers into the connection's
  temporary staging table, and move them with one ``INSERT ... SELECT`` that also
  advances the head. COPY encodes rows several times faster than array parameters; it
  goes through staging because PostgreSQL does not allow ``COPY FROM`` into a table with
  row-level security, and staging costs a truncation at commit, which is why small
  batches avoid it.

Either way row-level security checks every inserted row: a wrong tenant fails loudly
instead of storing nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson
from psycopg.types.json import Jsonb

from auditline.domain.events import Event, StoredEvent, TenantId, WriteResult
from auditline.integrity.leaf import canonical_ip
from auditline.storage.database import Connection, Cursor

COLUMNS = (
    "tenant_id", "id", "seq", "timestamp", "received_at", "user_id", "actor_type",
    "session_id", "action", "resource_type", "resource_id", "ip_address", "user_agent",
    "before", "after", "changed_fields", "metadata", "severity", "message", "request_id",
    "outcome", "leaf_hash",
)  # fmt: skip
_COLUMN_LIST = ", ".join(COLUMNS)


SMALL_BATCH: Final = 32
"""Batches up to this many events take the pipelined array statement, larger ones COPY
(measured on the storage path: arrays win for single events, COPY from a few dozen on)."""

# (column, array type) as the small-batch statement unnests them; changed_fields travels
# as JSON because a text[] per event would make a ragged two-dimensional array.
_ARRAYS: Final = (
    ("tenant_id", "text"), ("id", "uuid"), ("timestamp", "timestamptz"),
    ("received_at", "timestamptz"), ("user_id", "text"), ("actor_type", "text"),
    ("session_id", "text"), ("action", "text"), ("resource_type", "text"),
    ("resource_id", "text"), ("ip_address", "inet"), ("user_agent", "text"),
    ("before", "jsonb"), ("after", "jsonb"), ("changed_fields", "jsonb"),
    ("metadata", "jsonb"), ("severity", "severity"), ("message", "text"),
    ("request_id", "text"), ("outcome", "text"), ("leaf_hash", "bytea"),
)  # fmt: skip
_JSON_COLUMNS: Final = frozenset(c for c, t in _ARRAYS if t == "jsonb")
_PLAIN: Final = ", ".join(c for c, _ in _ARRAYS if c != "changed_fields")
_LOCK_HEAD: Final = "SELECT next_seq FROM tenant_log_heads WHERE tenant_id = %(t)s FOR UPDATE"
_INSERT_ARRAYS: Final = f"""
WITH batch AS (
    SELECT * FROM unnest({", ".join(f"%({c})s::{t}[]" for c, t in _ARRAYS)})
        WITH ORDINALITY AS b({", ".join(c for c, _ in _ARRAYS)}, ord)
), fresh AS (
    SELECT DISTINCT ON (b.id) b.* FROM batch b
     WHERE NOT EXISTS (SELECT FROM event_ids x WHERE x.tenant_id = %(t)s AND x.id = b.id)
     ORDER BY b.id, b.ord
), numbered AS (
    SELECT f.*, h.next_seq + row_number() OVER (ORDER BY f.ord) - 1 AS seq
      FROM fresh f JOIN tenant_log_heads h ON h.tenant_id = %(t)s
), ids AS (
    INSERT INTO event_ids (tenant_id, id, seq, timestamp)
    SELECT tenant_id, id, seq, timestamp FROM numbered
), head AS (
    UPDATE tenant_log_heads SET next_seq = next_seq + (SELECT count(*) FROM numbered)
     WHERE tenant_id = %(t)s
)
INSERT INTO events (seq, changed_fields, {_PLAIN})
SELECT seq,
       CASE WHEN changed_fields IS NOT NULL
            THEN ARRAY(SELECT jsonb_array_elements_text(changed_fields)) END,
       {_PLAIN}
  FROM numbered
RETURNING id, seq
"""  # noqa: S608 - column names are constants; every value is a bound parameter


class UnknownTenant(LookupError):
    """The tenant has no log (it does not exist)."""


@dataclass(frozen=True)
class PendingInsert:
    """A small batch's statements, sent; their results are read once the server ran them."""

    tenant: TenantId
    events: Sequence[Event]
    lock: Cursor
    insert: Cursor

    async def result(self) -> WriteResult:
        if await self.lock.fetchone() is None:
            raise UnknownTenant(self.tenant)
        stored = {row["id"]: row["seq"] for row in await self.insert.fetchall()}
        return _outcome(self.events, stored)


async def send_insert(conn: Connection, tenant: TenantId, events: Sequence[Event]) -> PendingInsert:
    """Send the small-batch statements for *events* (see the module's docstring).

    In pipeline mode nothing waits for the server here; call ``result()`` after the
    pipeline's sync. *events* may be at most ``SMALL_BATCH`` long only by convention:
    larger batches work, they are just slower than COPY.
    """
    params: dict[str, Any] = {"t": tenant}
    for column, _ in _ARRAYS:
        values = [getattr(event, column) for event in events]
        params[column] = [_jsonb(v) for v in values] if column in _JSON_COLUMNS else values
    lock = await conn.execute(_LOCK_HEAD, {"t": tenant})
    insert = await conn.execute(_INSERT_ARRAYS, params)
    return PendingInsert(tenant, events, lock, insert)


def _outcome(events: Sequence[Event], stored: dict[UUID, int]) -> WriteResult:
    """Which of *events* were stored now (*stored*: id to seq); the rest are duplicates."""
    inserted: dict[UUID, int] = {}
    duplicates: list[UUID] = []
    for event in events:
        if event.id in stored and event.id not in inserted:
            inserted[event.id] = stored[event.id]
        else:
            duplicates.append(event.id)
    return WriteResult(inserted=inserted, duplicates=duplicates)


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
    if len(events) <= SMALL_BATCH:
        return await (await send_insert(conn, tenant, events)).result()
    return await copy_insert(conn, tenant, events)


async def copy_insert(conn: Connection, tenant: TenantId, events: Sequence[Event]) -> WriteResult:
    """The large-batch shape of :func:`insert_events`: COPY through the staging table."""
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
