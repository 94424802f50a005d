"""The manifest of one archived tenant-day, and where its files live in the cold store.

Layout (Hive-style, so query engines can prune by tenant and day)::

    tenant=<tenant>/day=<YYYY-MM-DD>/manifest.json
    tenant=<tenant>/day=<YYYY-MM-DD>/events-<first 16 hex of the file's SHA-256>.parquet

A data file is named by its content, so rewriting a day (events that arrived late, or
archiving again after a restore) writes a *new* file beside the old one; the manifest is
switched to it only after it was verified, and the old file is removed last. A crash at
any point leaves a manifest that names a complete, verified file. The same rows give the
same name, which is what makes archiving a day twice a no-op in the store.

The manifest is stored beside the files (the cold store describes itself without the
database) and in the ``archives`` table (what the service lists and restores from).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from auditline.lifecycle.archive.parquet import SCHEMA_VERSION

MANIFEST: Final = "manifest.json"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC day as the half-open range [start, end)."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def day_prefix(tenant: str, day: date) -> str:
    return f"tenant={tenant}/day={day.isoformat()}/"


def data_file_name(sha256: str) -> str:
    return f"events-{sha256[:16]}.parquet"


def seq_ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Ascending *seqs* as inclusive [first, last] runs of consecutive numbers."""
    ranges: list[list[int]] = []
    for seq in seqs:
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        elif ranges and seq <= ranges[-1][1]:
            raise ValueError("seqs must be strictly ascending")
        else:
            ranges.append([seq, seq])
    return ranges


@dataclass(frozen=True, slots=True)
class FileEntry:
    name: str
    sha256: str
    bytes: int
    rows: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """What one tenant-day's archive holds; stored as JSON (``to_json``/``from_json``)."""

    tenant_id: str
    day: date
    rows: int
    first_timestamp: datetime
    last_timestamp: datetime
    first_seq: int
    last_seq: int
    seq_ranges: list[list[int]]
    """The archived positions as inclusive runs: what a verifier needs to tell an archived
    (authorised) absence from the hot log from a missing event."""
    files: list[FileEntry]
    schema_version: int = SCHEMA_VERSION
    format: str = "parquet"
    compression: str = "zstd"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["day"] = self.day.isoformat()
        data["first_timestamp"] = _iso(self.first_timestamp)
        data["last_timestamp"] = _iso(self.last_timestamp)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"manifest of unknown schema version {data.get('schema_version')}")
        fields = dict(data)
        fields["day"] = date.fromisoformat(fields["day"])
        fields["first_timestamp"] = datetime.fromisoformat(fields["first_timestamp"])
        fields["last_timestamp"] = datetime.fromisoformat(fields["last_timestamp"])
        fields["files"] = [FileEntry(**f) for f in fields["files"]]
        return cls(**fields)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")
