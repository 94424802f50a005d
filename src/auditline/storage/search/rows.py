"""Event rows as search reads them: the projections and fast decoding into domain objects.

Exports move tens of thousands of rows a second through here, so rows are read as tuples
(building an event is one positional call) and the two slowest loaders are replaced for
these statements only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.rows import tuple_row
from psycopg.types.json import set_json_loads

from auditline.domain.events import Event, StoredEvent
from auditline.domain.normalise import canonical_ip
from auditline.storage.database import Connection

# Event rows are read as tuples: seq, then the Event fields in declaration order, so
# building the domain object is one positional call. Extra columns come after these.
_EVENT_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Event))
_READ_COLUMNS: Final = ("seq", *_EVENT_FIELDS)
_N: Final = len(_READ_COLUMNS)
_TS: Final = _READ_COLUMNS.index("timestamp")
_ID: Final = _READ_COLUMNS.index("id")
Row = tuple[Any, ...]


def event_columns(alias: str) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(alias, c) for c in _READ_COLUMNS)


@dataclass(frozen=True, slots=True)
class Projection:
    """What a page query selects for each row; *ts* and *id* index its keyset position."""

    columns: Callable[[str], sql.Composable]
    width: int
    ts: int
    id: int


EVENT_ROWS: Final = Projection(event_columns, _N, _TS, _ID)


# ---------------------------------------------------------------------------------------
# Reading event rows fast
#
# Exports move tens of thousands of rows a second through here, so the two slowest
# loaders are replaced for these statements only (cursor-level adapters): jsonb is parsed
# with orjson, and inet is returned as text instead of being parsed into an ``ipaddress``
# object only to be turned back into text.


class _InetText(Loader):
    def load(self, data: Buffer) -> str:
        text = bytes(data).decode()
        # PostgreSQL writes IPv4 exactly as Python does; IPv6 goes through Python's
        # spelling so every read path agrees with the one the leaf hash used.
        return (canonical_ip(text) or text) if ":" in text else text


def _json_loads(data: str | bytes) -> Any:
    return orjson.loads(data)


async def fetch_rows(
    conn: Connection, statement: sql.Composed, params: dict[str, Any]
) -> list[Row]:
    cur = conn.cursor(row_factory=tuple_row)
    cur.adapters.register_loader("inet", _InetText)
    set_json_loads(_json_loads, cur)
    await cur.execute(statement, params)
    return await cur.fetchall()


def to_stored(row: Row) -> StoredEvent:
    return StoredEvent(event=Event(*row[1:_N]), seq=row[0])
