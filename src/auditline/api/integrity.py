"""Tamper evidence over HTTP: the newest checkpoint, inclusion and consistency proofs, and
the public checkpoint key.

Hashes are standard base64 of the raw 32 bytes, as in the checkpoint text. The same tenant
rules as search apply (admins, auditors, `logs:read` keys; a plain user may not: a tree
size counts every event of the tenant), and every call is recorded in the tenant's log.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from auditline.api.deps import ActorDep, PrincipalDep, ServicesDep
from auditline.api.problems import AUTHENTICATED, READ, error_responses
from auditline.api.routing import ModelBodyRoute
from auditline.api.schemas import TenantSlug
from auditline.domain.validation import MAX_SAFE_INTEGER
from auditline.integrity.note import encode_base64
from auditline.security.principal import Permission

router = APIRouter(tags=["integrity"], route_class=ModelBodyRoute)


TenantQuery = Annotated[
    TenantSlug | None, Query(description="The tenant, when the token grants several")
]
Base64Hash = Annotated[str, Field(description="standard base64 of a 32-byte SHA-256 hash")]


class CheckpointOut(BaseModel):
    checkpoint: str = Field(description="C2SP tlog-checkpoint in a C2SP signed note")
    tree_size: int
    root_hash: Base64Hash


class InclusionOut(BaseModel):
    leaf_index: int = Field(description="the event's seq: its leaf index in the tenant's log")
    tree_size: int
    leaf_hash: Base64Hash
    inclusion_path: list[Base64Hash]
    root_hash: Base64Hash
    checkpoint: str


class ConsistencyOut(BaseModel):
    from_: int = Field(alias="from", serialization_alias="from")
    to: int
    consistency_path: list[Base64Hash]


@router.get(
    "/api/v1/integrity/checkpoint",
    responses=error_responses(*AUTHENTICATED, *READ, "not-sealed"),
    summary="The log's newest checkpoint",
)
async def checkpoint(
    principal: PrincipalDep, actor: ActorDep, services: ServicesDep, tenant_id: TenantQuery = None
) -> CheckpointOut:
    """The newest signed tree head of the tenant's log. Keep one: any later rewrite of
    history is caught by asking for a consistency proof from it."""
    tenant = principal.authorize(tenant_id, Permission.VERIFY_LOGS)
    async with services.admission.read():
        latest = await services.proofs.checkpoint(tenant, actor)
    return CheckpointOut(
        checkpoint=latest.note, tree_size=latest.tree_size,
        root_hash=encode_base64(latest.root_hash),
    )  # fmt: skip


@router.get(
    "/api/v1/logs/{event_id:uuid}/proof",
    responses=error_responses(*AUTHENTICATED, *READ, "not-sealed", "not-found", "http-404"),
    summary="Inclusion proof of one event",
)
async def inclusion_proof(
    event_id: UUID,
    principal: PrincipalDep,
    actor: ActorDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
) -> InclusionOut:
    """The event's audit path to the newest checkpoint's root (RFC 9162 section 2.1.3).
    409 while the event is not sealed yet (``Retry-After`` says when to ask again)."""
    tenant = principal.authorize(tenant_id, Permission.VERIFY_LOGS)
    async with services.admission.read():
        proof = await services.proofs.inclusion(tenant, event_id, actor)
    return InclusionOut(
        leaf_index=proof.leaf_index,
        tree_size=proof.checkpoint.tree_size,
        leaf_hash=encode_base64(proof.leaf_hash),
        inclusion_path=[encode_base64(h) for h in proof.path],
        root_hash=encode_base64(proof.checkpoint.root_hash),
        checkpoint=proof.checkpoint.note,
    )


@router.get(
    "/api/v1/integrity/consistency",
    responses=error_responses(*AUTHENTICATED, *READ, "not-sealed", "invalid-range"),
    summary="Consistency proof between two tree sizes",
)
async def consistency_proof(
    principal: PrincipalDep,
    actor: ActorDep,
    services: ServicesDep,
    from_: Annotated[
        int, Query(alias="from", ge=0, le=MAX_SAFE_INTEGER, description="the older tree size")
    ],
    to: Annotated[
        int | None,
        Query(ge=0, le=MAX_SAFE_INTEGER, description="the newer tree size (default: newest)"),
    ] = None,
    tenant_id: TenantQuery = None,
) -> ConsistencyOut:
    """``PROOF(from, D[to])`` of RFC 9162 section 2.1.4: that the log of size *to* extends
    the log of size *from* without changing it."""
    tenant = principal.authorize(tenant_id, Permission.VERIFY_LOGS)
    async with services.admission.read():
        old, new, path = await services.proofs.consistency(tenant, from_, to, actor)
    return ConsistencyOut.model_validate(
        {"from": old, "to": new, "consistency_path": [encode_base64(h) for h in path]}
    )
