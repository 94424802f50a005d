"""Every API call the clients make, described once (``Call``), sent by either client.

Paths, parameters, bodies and the parsing of answers live here and nowhere else, so the sync
and async clients cannot drift apart. The live stream is not a call (it is a WebSocket:
``stream.py``); the proof calls fetch what ``proofs.py`` checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from uuid_utils.compat import uuid7

from auditline_client import types as api
from auditline_client._http import Call, encode, json_body, no_body, query, text_body

LOGS = "/api/v1/logs"


def prepared(event: api.NewEvent, *, stamp: bool = False) -> dict[str, Any]:
    """A copy of *event* with its id (a new UUIDv7 when absent), and with ``stamp`` its
    timestamp (now, when absent: an event that waits in a batch keeps the time it happened).

    The id is what makes sending the event again safe: the server stores an id once.
    """
    out: dict[str, Any] = dict(event)
    if out.get("id") is None:
        out["id"] = str(uuid7())
    if stamp and out.get("timestamp") is None:
        out["timestamp"] = datetime.now(UTC)
    return out


def create(event: api.NewEvent) -> Call[api.Event | api.Duplicate]:
    body = prepared(event)
    return Call("POST", LOGS, json_body, body=encode(body), tenant=body.get("tenant_id"))


def create_many(events: Iterable[api.NewEvent], tenant: str | None) -> Call[api.BulkResult]:
    return create_encoded([encode(prepared(e)) for e in events], tenant)


def create_encoded(events: list[bytes], tenant: str | None) -> Call[api.BulkResult]:
    """Bulk create from events already encoded (with their ids) by ``encode(prepared(e))``."""
    body = b'{"events":[' + b",".join(events) + b"]}"
    return Call("POST", f"{LOGS}/bulk", json_body, body=body, tenant=tenant)


def get(event_id: str | UUID, tenant: str | None) -> Call[api.Event]:
    return Call("GET", f"{LOGS}/{event_id}", json_body, tenant=tenant)


def split_tenant(filters: api.SearchFilters) -> tuple[str | None, dict[str, object]]:
    """The tenant a call's filters name (None: the client's default), and the other filters."""
    rest = dict(filters)
    return cast(str | None, rest.pop("tenant_id", None)), rest


def search(
    filters: api.SearchFilters, *, limit: int | None, order: api.Order, cursor: str | None,
    include_total: bool, facets: Sequence[api.FacetField] | None = None,
    facet_size: int | None = None, highlight: bool = False,
) -> Call[api.Page]:  # fmt: skip
    tenant, rest = split_tenant(filters)
    params = query(
        {**rest, "limit": limit, "order": order, "cursor": cursor, "include_total": include_total,
         "facets": ",".join(facets) if facets else None, "facet_size": facet_size,
         "highlight": highlight}
    )  # fmt: skip
    return Call("GET", LOGS, json_body, params=params, tenant=tenant)


def export(
    filters: api.SearchFilters, *, fmt: api.ExportFormat, order: api.Order, include_proofs: bool
) -> Call[None]:
    """The export request; the clients stream its body to a file instead of parsing it."""
    tenant, rest = split_tenant(filters)
    params = query({**rest, "format": fmt, "order": order, "include_proofs": include_proofs})
    return Call("GET", f"{LOGS}/export", no_body, params=params, tenant=tenant)


def stats(filters: api.SearchFilters, *, interval: api.Interval) -> Call[api.Stats]:
    tenant, rest = split_tenant(filters)
    params = query({**rest, "interval": interval})
    return Call("GET", f"{LOGS}/stats", json_body, params=params, tenant=tenant)


TENANTS = "/api/v1/tenants"


def list_tenants() -> Call[list[api.Tenant]]:
    return Call("GET", TENANTS, json_body, scoped=False)


def create_tenant(tenant: Mapping[str, Any]) -> Call[api.Tenant]:
    # Not idempotent: sent again after a lost answer it would be a 409 for a tenant created.
    return Call("POST", TENANTS, json_body, body=encode(tenant), idempotent=False, scoped=False)


def get_tenant(tenant_id: str) -> Call[api.Tenant]:
    return Call("GET", f"{TENANTS}/{tenant_id}", json_body, scoped=False)


def update_tenant(tenant_id: str, changes: api.TenantChanges) -> Call[api.Tenant]:
    # Idempotent: the same changes applied twice leave the same tenant.
    return Call("PATCH", f"{TENANTS}/{tenant_id}", json_body, body=encode(changes), scoped=False)


KEYS = "/api/v1/api-keys"


def create_api_key(
    name: str, scopes: list[api.Scope], expires_at: datetime | None, tenant: str | None
) -> Call[api.CreatedApiKey]:
    document: dict[str, Any] = {"name": name, "scopes": scopes}
    if expires_at is not None:
        document["expires_at"] = expires_at
    body = encode(document)
    # Not idempotent: sent twice it would make two keys, one of them with a lost secret.
    return Call("POST", KEYS, json_body, body=body, idempotent=False, tenant=tenant)


def list_api_keys(tenant: str | None) -> Call[list[api.ApiKey]]:
    return Call("GET", KEYS, json_body, tenant=tenant)


def revoke_api_key(key_id: str | UUID, tenant: str | None) -> Call[None]:
    return Call("DELETE", f"{KEYS}/{key_id}", no_body, tenant=tenant)


INTEGRITY = "/api/v1/integrity"


def checkpoint(tenant: str | None) -> Call[api.CheckpointAnswer]:
    return Call("GET", f"{INTEGRITY}/checkpoint", json_body, tenant=tenant)


def proof(event_id: str | UUID, tenant: str | None) -> Call[api.InclusionProof]:
    return Call("GET", f"{LOGS}/{event_id}/proof", json_body, tenant=tenant)


def consistency(old: int, new: int, tenant: str | None) -> Call[api.ConsistencyProof]:
    params = query({"from": old, "to": new})
    return Call("GET", f"{INTEGRITY}/consistency", json_body, params=params, tenant=tenant)


def checkpoint_key() -> Call[str]:
    return Call("GET", "/.well-known/auditline-checkpoint-key", text_body, scoped=False)
