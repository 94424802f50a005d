"""The shapes of what goes to the server and what comes back, as typed dictionaries.

They are the JSON documents of the API (docs/api.md) as they are on the wire: times are RFC
3339 text and ids are UUID text in what comes back. Typed dictionaries cost nothing to build
or read, which matters to an application that logs from its request handlers, and a type
checker still catches a misspelt field.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Required, TypedDict
from uuid import UUID

Severity = Literal["INFO", "WARNING", "ERROR", "CRITICAL"]
ActorType = Literal["user", "service", "system"]
Outcome = Literal["success", "failure"]
Order = Literal["asc", "desc"]
ExportFormat = Literal["csv", "json", "ndjson"]
Interval = Literal["minute", "hour", "day"]
Scope = Literal["logs:write", "logs:read"]


class NewEvent(TypedDict, total=False):
    """An event to store. Only ``action`` is required.

    ``id`` is made by the client (a UUIDv7) when absent, so that a retry is idempotent.
    ``timestamp`` must carry an offset (a naive ``datetime`` is refused before sending).
    """

    id: str | UUID
    tenant_id: str
    timestamp: str | datetime
    user_id: str
    actor_type: ActorType
    session_id: str
    action: Required[str]
    resource_type: str
    resource_id: str
    ip_address: str
    user_agent: str
    before: dict[str, Any]
    after: dict[str, Any]
    metadata: dict[str, Any]
    severity: Severity
    message: str
    request_id: str
    outcome: Outcome


class Event(TypedDict):
    """A stored event, as ``GET /api/v1/logs/{id}`` returns it."""

    id: str
    tenant_id: str
    seq: int
    timestamp: str
    received_at: str
    user_id: str | None
    actor_type: ActorType | None
    session_id: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    ip_address: str | None
    user_agent: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed_fields: list[str] | None
    metadata: dict[str, Any]
    severity: Severity
    message: str | None
    request_id: str | None
    outcome: Outcome | None
    leaf_hash: str


class Duplicate(TypedDict):
    """The answer to a create whose id was already stored: nothing new was stored."""

    id: str
    seq: int
    duplicate: Literal[True]


class BulkResult(TypedDict):
    inserted: int
    duplicates: int
    ids: list[str]


class SearchFilters(TypedDict, total=False):
    """Filters of search, export, statistics; every one given must hold (docs/search.md)."""

    tenant_id: str
    start: str | datetime
    end: str | datetime
    user_id: str
    session_id: str
    action: str | Sequence[str]
    resource_type: str
    resource_id: str
    severity: Severity | Sequence[Severity]
    min_severity: Severity
    ip_address: str
    request_id: str
    outcome: Outcome
    actor_type: ActorType
    include_access: bool
    q: str


Relation = Literal["eq", "gte", "approx"]
FacetField = Literal["action", "user_id", "resource_type", "severity", "outcome"]


class Total(TypedDict):
    value: int
    relation: Relation


class FacetValue(TypedDict):
    key: str | None
    count: int


class Facet(TypedDict):
    relation: Relation
    values: list[FacetValue]


class Facets(TypedDict):
    partial: bool
    sampled: int | None
    fields: dict[str, Facet]


class MetadataHighlight(TypedDict):
    path: list[str]
    value: str


class Highlight(TypedDict):
    id: str
    message: str | None
    metadata: list[MetadataHighlight]


class Page(TypedDict):
    items: list[Event]
    next_cursor: str | None
    total: Total | None
    facets: Facets | None
    highlights: list[Highlight] | None


class Count(TypedDict):
    key: str | None
    count: int


class ResourceCount(TypedDict):
    resource_type: str | None
    resource_id: str | None
    count: int


class Bucket(TypedDict):
    start: str
    count: int


class Stats(TypedDict):
    start: str
    end: str
    interval: Interval
    total: int
    by_action: list[Count]
    by_severity: list[Count]
    by_resource_type: list[Count]
    by_outcome: list[Count]
    top_users: list[Count]
    top_resources: list[ResourceCount]
    timeline: list[Bucket]
    source: Literal["rollup", "events"]


class Tenant(TypedDict):
    id: str
    name: str
    retention_days: int
    archive_after_days: int | None
    legal_hold: bool
    settings: dict[str, Any]
    created_at: str
    updated_at: str


class TenantChanges(TypedDict, total=False):
    """What ``update_tenant`` may change; ``settings`` replaces the previous object whole."""

    name: str
    retention_days: int
    archive_after_days: int | None
    legal_hold: bool
    settings: dict[str, Any]


class ApiKey(TypedDict):
    id: str
    tenant_id: str
    name: str
    prefix: str
    scopes: list[str]
    created_by: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class CreatedApiKey(ApiKey):
    key: str
    """The secret: in this answer and nowhere else, ever."""


class CheckpointAnswer(TypedDict):
    """``GET /api/v1/integrity/checkpoint``: ``checkpoint`` is the signed note; the other
    two fields repeat it unverified (``auditline_client.proofs.Checkpoint`` verifies)."""

    checkpoint: str
    tree_size: int
    root_hash: str


class InclusionProof(TypedDict):
    """``GET /api/v1/logs/{id}/proof``; hashes are standard base64 of 32 bytes."""

    leaf_index: int
    tree_size: int
    leaf_hash: str
    inclusion_path: list[str]
    root_hash: str
    checkpoint: str


ConsistencyProof = TypedDict(
    "ConsistencyProof", {"from": int, "to": int, "consistency_path": list[str]}
)
"""``GET /api/v1/integrity/consistency``: ``PROOF(from, D[to])``, base64 hashes."""


# "in" is a keyword, hence the functional form.
FieldProblem = TypedDict(
    "FieldProblem",
    {"pointer": str, "parameter": str, "in": str, "index": int, "detail": str},
    total=False,
)
"""One entry of a problem's ``errors``: a JSON Pointer into the body (``pointer``, with the
event's ``index`` in a bulk request) or a query parameter (``parameter``), and ``detail``."""
