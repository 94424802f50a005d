"""The archive's file format: one Parquet file (zstd) per tenant-day, every column of the row.

Schema version 1 keeps each column of ``events`` (``storage.events.COLUMNS``) so that a
restore puts back exactly the row that was archived, and the leaf hashes (and so every
Merkle proof) still verify:

========================  ==============================  ==================================
column                    Parquet (logical type)          kept as
========================  ==============================  ==================================
tenant_id, user_id, ...   BYTE_ARRAY (STRING)             text
id                        FIXED_LEN_BYTE_ARRAY(16) (UUID) the UUID
seq                       INT64                           the event's leaf index
timestamp, received_at    INT64 (TIMESTAMP µs, UTC)       PostgreSQL's microseconds
ip_address, severity      BYTE_ARRAY (STRING)             PostgreSQL's text form
before, after, metadata   BYTE_ARRAY (JSON)               ``jsonb::text``, read back by ``::jsonb``
changed_fields            LIST<STRING>                    the array
leaf_hash                 FIXED_LEN_BYTE_ARRAY(32)        the RFC 9162 leaf hash
========================  ==============================  ==================================

Logical types rather than raw bytes, so DuckDB, Athena or Spark read a file as it is. Rows
are in ``seq`` order. Encoding and decoding are CPU work: the service runs them in a thread.
Only pyarrow's own stream classes are used for I/O (reading from a Python ``BytesIO``
made the interpreter abort at exit now and then, pyarrow 26).
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from auditline.domain.events import StoredEvent
from auditline.storage.events import COLUMNS, row_to_stored

SCHEMA_VERSION: Final = 1
_UTC_US: Final = pa.timestamp("us", tz="UTC")
_TYPES: Final[dict[str, pa.DataType]] = {
    "id": pa.uuid(),
    "seq": pa.int64(),
    "timestamp": _UTC_US,
    "received_at": _UTC_US,
    "before": pa.json_(),
    "after": pa.json_(),
    "metadata": pa.json_(),
    "changed_fields": pa.list_(pa.string()),
    "leaf_hash": pa.binary(32),
}
_REQUIRED: Final = frozenset(
    {"tenant_id", "id", "seq", "timestamp", "received_at", "action", "metadata", "severity",
     "leaf_hash"}
)  # fmt: skip
SCHEMA: Final = pa.schema(
    [pa.field(c, _TYPES.get(c, pa.string()), nullable=c not in _REQUIRED) for c in COLUMNS],
    metadata={"auditline.schema_version": str(SCHEMA_VERSION)},
)


def to_batch(rows: Sequence[tuple[Any, ...]]) -> pa.RecordBatch:
    """A record batch of *rows* (tuples in ``COLUMNS`` order, as ``storage.archive`` reads)."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in COLUMNS]
    arrays = []
    for field, values in zip(SCHEMA, columns, strict=True):
        if field.name == "id":
            values = tuple(v.bytes for v in values)
        elif field.name == "leaf_hash":
            values = tuple(bytes(v) for v in values)
        arrays.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def rows_of(table: pa.Table | pa.RecordBatch) -> Iterator[tuple[Any, ...]]:
    """Tuples in ``COLUMNS`` order, in the forms ``storage.archive.restore_events`` binds."""
    columns = []
    for name in COLUMNS:
        column = table.column(name)
        if name == "id":
            columns.append([None if b is None else uuid.UUID(bytes=b) for b in _storage(column)])
        else:
            columns.append(_storage(column) if name in ("before", "after", "metadata") else
                           column.to_pylist())  # fmt: skip
    return zip(*columns, strict=True)


def stored_event(row: tuple[Any, ...]) -> StoredEvent:
    """The event a row of :func:`rows_of` holds, as ``storage.events`` would read it back
    (for hashing it again: ``integrity.leaf.leaf_hash``)."""
    fields = dict(zip(COLUMNS, row, strict=True))
    for name in ("before", "after", "metadata"):
        if fields[name] is not None:
            fields[name] = json.loads(fields[name])
    if fields["ip_address"] is not None:  # inet's text form: "10.1.2.3/32"
        fields["ip_address"] = str(ipaddress.ip_interface(fields["ip_address"]).ip)
    return row_to_stored(fields)


def _storage(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """An extension column's plain values (the UUID's bytes, the JSON's text)."""
    if isinstance(column, pa.ChunkedArray):
        return [v for chunk in column.chunks for v in chunk.storage.to_pylist()]
    return list(column.storage.to_pylist())


class FileWriter:
    """Writes batches to one Parquet file at *path*; a row group per batch."""

    def __init__(self, path: Path, *, zstd_level: int) -> None:
        self.rows = 0
        self._writer = pq.ParquetWriter(
            pa.OSFile(str(path), "wb"),
            SCHEMA,
            compression="zstd",
            compression_level=zstd_level,
            write_statistics=True,
            # Random ids and hashes gain nothing from a dictionary.
            use_dictionary=[c for c in COLUMNS if c not in ("id", "leaf_hash", "seq")],
        )

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows:
            if isinstance(batch, pa.Table):
                self._writer.write_table(batch)
            else:
                self._writer.write_batch(batch)
            self.rows += batch.num_rows

    def close(self) -> None:
        self._writer.close()


def write_file(path: Path, batches: Iterable[pa.RecordBatch | pa.Table], *, zstd_level: int) -> int:
    """Write *batches* to a new file at *path*; the rows written."""
    writer = FileWriter(path, zstd_level=zstd_level)
    try:
        for batch in batches:
            writer.write(batch)
    finally:
        writer.close()
    return writer.rows


def read_file(path: Path) -> pa.Table:
    """The whole file, checked against the schema this version writes."""
    with pa.OSFile(str(path), "rb") as source:
        table = pq.read_table(source)
    version = (table.schema.metadata or {}).get(b"auditline.schema_version")
    if version != str(SCHEMA_VERSION).encode() or not table.schema.equals(SCHEMA):
        raise ValueError(f"{path.name}: not an archive of schema version {SCHEMA_VERSION}")
    return table


def read_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The file's row groups one at a time (bounded memory for large days)."""
    with pa.OSFile(str(path), "rb") as source:
        parquet = pq.ParquetFile(source)
        version = (parquet.schema_arrow.metadata or {}).get(b"auditline.schema_version")
        if version != str(SCHEMA_VERSION).encode():
            raise ValueError(f"{path.name}: not an archive of schema version {SCHEMA_VERSION}")
        for group in range(parquet.num_row_groups):
            yield from parquet.read_row_group(group).to_batches()


def row_count(path: Path) -> int:
    """Rows in the file, from its footer."""
    with pa.OSFile(str(path), "rb") as source:
        return int(pq.ParquetFile(source).metadata.num_rows)


def positions(path: Path) -> tuple[list[int], Any, Any]:
    """The file's ``seq`` values in order, and its first and last timestamp (two columns
    read, not the whole file)."""
    import pyarrow.compute as pc

    with pa.OSFile(str(path), "rb") as source:
        table = pq.read_table(source, columns=["seq", "timestamp"])
    times = table.column("timestamp")
    return table.column("seq").to_pylist(), pc.min(times).as_py(), pc.max(times).as_py()
