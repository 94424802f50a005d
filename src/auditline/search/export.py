"""Export formats: CSV, JSON and NDJSON, produced batch by batch with constant memory.

The CSV columns are fixed and documented (``CSV_COLUMNS``, ``docs/search.md``); JSON
fields (``metadata``, ``before``, ``after``, ``changed_fields``) are serialised as compact
JSON inside their cell. Every cell that a spreadsheet would read as a formula — starting
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return — is prefixed with a single
quote, as OWASP's CSV injection guidance recommends; the exported value is then visibly
changed, never silently executed. JSON and NDJSON carry the values unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

import orjson

from auditline.domain.events import StoredEvent

ExportFormat = Literal["csv", "json", "ndjson"]
MEDIA_TYPES: Final[dict[ExportFormat, str]] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
}
CSV_COLUMNS: Final = (
    "id", "tenant_id", "seq", "timestamp", "received_at", "user_id", "actor_type",
    "session_id", "action", "resource_type", "resource_id", "ip_address", "user_agent",
    "severity", "outcome", "message", "request_id", "changed_fields", "metadata", "before",
    "after", "leaf_hash",
)  # fmt: skip
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def _time(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def record(stored: StoredEvent) -> dict[str, Any]:
    """The event as the API returns it (same fields and spellings as ``EventOut``)."""
    e = stored.event
    return {
        "id": str(e.id), "tenant_id": e.tenant_id, "seq": stored.seq,
        "timestamp": _time(e.timestamp), "received_at": _time(e.received_at),
        "user_id": e.user_id, "actor_type": e.actor_type, "session_id": e.session_id,
        "action": e.action, "resource_type": e.resource_type, "resource_id": e.resource_id,
        "ip_address": e.ip_address, "user_agent": e.user_agent, "before": e.before,
        "after": e.after, "changed_fields": e.changed_fields, "metadata": e.metadata,
        "severity": e.severity, "message": e.message, "request_id": e.request_id,
        "outcome": e.outcome, "leaf_hash": e.leaf_hash.hex(),
    }  # fmt: skip


def neutralise(cell: str) -> str:
    """*cell*, prefixed with ``'`` when a spreadsheet would evaluate it as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _text(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _json_cell(value: Any) -> str:
    # Serialised JSON starts with '{', '[', a digit, a quote or a literal: never a formula.
    return "" if value is None else orjson.dumps(value).decode()


def csv_row(stored: StoredEvent) -> list[str]:
    """The CSV cells of one event, in :data:`CSV_COLUMNS` order.

    Only free-form text can start a formula; ids, slugs, verbs, enumerations, times, IP
    addresses, numbers and serialised JSON cannot, so they are written as they are.
    """
    e = stored.event
    return [
        str(e.id), e.tenant_id, str(stored.seq), _time(e.timestamp), _time(e.received_at),
        _text(e.user_id), e.actor_type or "", _text(e.session_id), e.action,
        _text(e.resource_type), _text(e.resource_id), e.ip_address or "",
        _text(e.user_agent), e.severity, e.outcome or "", _text(e.message),
        _text(e.request_id), _json_cell(e.changed_fields), _json_cell(e.metadata),
        _json_cell(e.before), _json_cell(e.after), e.leaf_hash.hex(),
    ]  # fmt: skip


class Attachments(Protocol):
    """What an export carries besides the events (``include_proofs``): a document at its
    head, and fields added to each event. JSON and NDJSON only."""

    @property
    def head(self) -> dict[str, Any]: ...

    async def for_batch(self, batch: list[StoredEvent]) -> list[dict[str, Any]]: ...


async def encode(
    batches: AsyncIterator[list[StoredEvent]],
    fmt: ExportFormat,
    *,
    on_batch: Callable[[int], None] | None = None,
    attachments: Attachments | None = None,
) -> AsyncIterator[bytes]:
    """The export file from domain objects, one chunk per batch.

    *on_batch* hears how many events each batch held. Nothing is yielded before the first
    batch has been read, so a caller that awaits the first chunk learns about a failing
    backend before it has sent anything. With *attachments*, NDJSON's first line is their
    head and JSON is ``{<head>..., "events": [...]}``; each event gains their fields.
    """

    async def lines() -> AsyncIterator[list[str]]:
        for_csv = io.StringIO()
        writer = csv.writer(for_csv, lineterminator="\r\n")
        async for batch in batches:
            if fmt == "csv":
                # One record per item; a record may itself contain line breaks (quoted).
                out = []
                for stored in batch:
                    for_csv.seek(0)
                    for_csv.truncate()
                    writer.writerow(csv_row(stored))
                    out.append(for_csv.getvalue()[:-2])
                yield out
            elif attachments is not None:
                extra = await attachments.for_batch(batch)
                yield [
                    orjson.dumps(record(s) | x).decode() for s, x in zip(batch, extra, strict=True)
                ]
            else:
                yield [orjson.dumps(record(s)).decode() for s in batch]

    head = None if attachments is None else orjson.dumps(attachments.head).decode()
    async for chunk in frame(lines(), fmt, on_batch=on_batch, head=head):
        yield chunk


async def frame(
    batches: AsyncIterator[list[str]],
    fmt: ExportFormat,
    *,
    on_batch: Callable[[int], None] | None = None,
    head: str | None = None,
) -> AsyncIterator[bytes]:
    """The export file from encoded lines (one event each): header, separators, footer.

    *head* (a JSON object's text) opens an NDJSON file as its first line, or wraps a JSON
    file as ``{<head's members>, "events": [...]}``.
    """
    header = (",".join(CSV_COLUMNS) + "\r\n") if fmt == "csv" else "[" if fmt == "json" else ""
    footer = "\n]\n" if fmt == "json" else ""
    if head is not None and fmt == "ndjson":
        header = head + "\n"
    elif head is not None and fmt == "json":
        members = head.strip()[1:-1]
        header = "{" + (members + "," if members else "") + '"events":['
        footer = "\n]}\n"
    first = True
    async for lines in batches:
        if not lines:
            continue
        if fmt == "csv":
            body = "\r\n".join(lines) + "\r\n"
        elif fmt == "json":
            body = ("\n" if first else ",\n") + ",\n".join(lines)
        else:
            body = "\n".join(lines) + "\n"
        yield ((header if first else "") + body).encode()
        first = False
        if on_batch is not None:
            on_batch(len(lines))
    if first:
        yield (header + footer).encode()
    elif footer:
        yield footer.encode()


def filename(tenant: str, fmt: ExportFormat, now: datetime) -> str:
    return f"auditline-{tenant}-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.{fmt}"
