"""``DELETE /api/v1/logs/cleanup``: remove a tenant's old events (tenant admins, platform
admins naming the tenant).

The handler parses and authorizes; ``lifecycle.retention`` decides everything else: the
default bound (the tenant's retention), the minimum age (422), the legal hold (409), and
whether the removal is small enough to answer now (200) or goes to a job (202).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from auditline.api.deps import ActorDep, PrincipalDep, ServicesDep
from auditline.api.problems import AUTHENTICATED, error_responses
from auditline.api.schemas import Instant, TenantSlug
from auditline.lifecycle.retention import deletion_view
from auditline.security.principal import Permission

# The query model forbids unknown parameters itself (reject_unknown_query is for routes
# without one).
router = APIRouter(prefix="/api/v1/logs", tags=["logs"])


class CleanupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: TenantSlug | None = Field(
        default=None, description="Required when the token grants several tenants"
    )
    before: Instant | None = Field(
        default=None,
        description="Remove events older than this (RFC 3339); default: now minus the "
        "tenant's retention_days. Must be at least retention.min_age_hours ago.",
    )
    dry_run: bool = Field(default=False, description="Only count what would be removed")


class CleanupOut(BaseModel):
    tenant_id: str
    before: datetime
    dry_run: bool
    count: int = Field(description="Events older than `before` when the request started")
    deleted: int = Field(description="Events removed (0 for a dry run)")
    batches: int
    seq_ranges: list[list[int]] = Field(
        description="Removed sequence numbers as inclusive [first, last] runs (the first 500;"
        " the removal records in the log list them all)"
    )
    seq_ranges_total: int = Field(description="How many runs were removed")
    stopped: str | None = Field(
        default=None, description="`legal_hold` if a hold placed meanwhile stopped it"
    )


class CleanupQueued(BaseModel):
    tenant_id: str
    before: datetime
    count: int
    job_id: UUID
    status_url: str


@router.delete(
    "/cleanup",
    response_model=CleanupOut,
    responses={
        202: {"model": CleanupQueued, "description": "Too large to answer now: a job runs it"},
        **error_responses(*AUTHENTICATED, "legal-hold"),
    },
    summary="Remove old events (tenant admin)",
)
async def cleanup_logs(
    principal: PrincipalDep,
    actor: ActorDep,
    services: ServicesDep,
    params: Annotated[CleanupParams, Query()],
) -> CleanupOut | JSONResponse:
    """Remove the tenant's events older than `before`; each batch is recorded in the
    tenant's own log (DELETE, `audit_log`) with the sequence ranges removed, in the same
    transaction. Never events younger than the minimum age (422), never under a legal hold
    (409)."""
    tenant = principal.authorize(params.tenant_id, Permission.CLEANUP_LOGS)
    done = await services.retention.cleanup(
        tenant, actor, before=params.before, dry_run=params.dry_run
    )
    if done.job_id is not None:
        queued = CleanupQueued(
            tenant_id=tenant, before=done.before, count=done.count, job_id=done.job_id,
            status_url=f"/api/v1/jobs/{done.job_id}",
        )  # fmt: skip
        return JSONResponse(queued.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    view = deletion_view(done.deletion) if done.deletion else {}
    return CleanupOut(
        tenant_id=tenant,
        before=done.before,
        dry_run=done.dry_run,
        count=done.count,
        deleted=view.get("deleted", 0),
        batches=view.get("batches", 0),
        seq_ranges=view.get("seq_ranges", []),
        seq_ranges_total=view.get("seq_ranges_total", 0),
        stopped=view.get("stopped"),
    )
