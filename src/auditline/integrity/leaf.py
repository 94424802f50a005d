"""Leaf hashing: the bytes of an event that its Merkle leaf commits to.

The leaf is RFC 9162's ``SHA-256(0x00 || entry)`` where *entry* is the RFC 8785 (JCS)
canonical JSON of the stored event's fields. Everything a reader sees is covered except the
sequence number, which is the leaf's index in the tenant's tree and therefore already
bound by the tree itself. Keeping it out lets the hash be computed before the writing
transaction takes the tenant's log lock.

The canonical form must be reproducible from what storage returns, so values are
normalised the same way on both paths (``domain.normalise``): timestamps as UTC RFC 3339
with microseconds, IP addresses in Python's canonical text form, absent fields as JSON null.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from auditline.domain.events import Event
from auditline.domain.normalise import rfc3339
from auditline.integrity.canonical import canonical_json

LEAF_PREFIX = b"\x00"
FORMAT_VERSION = 1


def leaf_entry(event: Event) -> dict[str, Any]:
    """The JSON object a leaf commits to (version 1)."""
    return {
        "v": FORMAT_VERSION,
        "tenant_id": event.tenant_id,
        "id": str(event.id),
        "timestamp": rfc3339(event.timestamp),
        "received_at": rfc3339(event.received_at),
        "user_id": event.user_id,
        "actor_type": event.actor_type,
        "session_id": event.session_id,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "ip_address": event.ip_address,  # canonical by construction (see canonical_ip)
        "user_agent": event.user_agent,
        "before": event.before,
        "after": event.after,
        "changed_fields": event.changed_fields,
        "metadata": event.metadata,
        "severity": event.severity,
        "message": event.message,
        "request_id": event.request_id,
        "outcome": event.outcome,
    }


def leaf_hash(event: Event) -> bytes:
    """RFC 9162 leaf hash of *event* (its ``leaf_hash`` field is ignored)."""
    return entry_hash(leaf_entry(event))


def entry_hash(entry: dict[str, Any]) -> bytes:
    """RFC 9162 leaf hash of a leaf entry (:func:`leaf_entry`, :func:`record_entry`)."""
    return hashlib.sha256(LEAF_PREFIX + canonical_json(entry)).digest()


def record_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    """The leaf entry of an event as the API and exports spell it (JSON), for a verifier
    that has only the exported file: the same fields, times normalised to the leaf's
    spelling. Raises ``KeyError`` or ``ValueError`` for a record that is not an event."""
    entry = {name: record[name] for name in _ENTRY_FIELDS}
    for name in ("timestamp", "received_at"):
        entry[name] = rfc3339(datetime.fromisoformat(record[name]))
    return {"v": FORMAT_VERSION, **entry}


_ENTRY_FIELDS = (
    "tenant_id", "id", "timestamp", "received_at", "user_id", "actor_type", "session_id",
    "action", "resource_type", "resource_id", "ip_address", "user_agent", "before", "after",
    "changed_fields", "metadata", "severity", "message", "request_id", "outcome",
)  # fmt: skip
