"""``/api/v1/jobs``: background jobs, for the admins of their tenant and platform admins.

A tenant admin sees the jobs of their tenant; a platform admin sees every tenant's (or, with
``tenant_id``, one tenant's; ``tenant_id=platform`` is the platform's own jobs). Another
tenant's job answers exactly as a job that does not exist (404).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from auditline.api.deps import PrincipalDep, ServicesDep
from auditline.api.problems import AUTHENTICATED, error_responses
from auditline.api.routing import ModelBodyRoute
from auditline.api.schemas import TenantSlug
from auditline.search.cursor import InvalidCursor
from auditline.security.principal import Permission, Principal
from auditline.storage.jobs import JobRow

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], route_class=ModelBodyRoute)


JobStatus = Literal["queued", "running", "succeeded", "failed"]
TenantQuery = Annotated[
    TenantSlug | None,
    Query(description="Required when the token grants several tenants; platform admins may "
          "omit it to see every tenant's jobs"),
]  # fmt: skip


class JobOut(BaseModel):
    id: UUID
    tenant_id: str | None = Field(description="null for platform jobs")
    kind: str
    status: JobStatus
    progress: Any = Field(description="a fraction 0..1 or an object, as the task reports it")
    result: Any = Field(description="what the task returned, once it succeeded")
    error: str | None = Field(description="the last failure, if any")
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: JobRow) -> JobOut:
        return cls(
            id=job.id, tenant_id=job.tenant_id, kind=job.kind, status=job.status,
            progress=job.progress, result=job.result, error=job.error, attempts=job.attempts,
            created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        )  # fmt: skip


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


def _scope(principal: Principal, tenant_id: str | None) -> Any:
    """The tenant whose jobs the caller sees, or None for every tenant (platform admins)."""
    if tenant_id is None and principal.is_platform_admin:
        principal.require(Permission.MANAGE_TENANT)
        return None
    return principal.authorize(tenant_id, Permission.MANAGE_TENANT)


def _encode(job: JobRow) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, job_id = raw.partition("|")
        position = datetime.fromisoformat(at), UUID(job_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("the cursor is not one this endpoint issued") from exc
    if position[0].tzinfo is None:
        raise InvalidCursor("the cursor is not one this endpoint issued")
    return position


@router.get(
    "/{job_id}",
    responses=error_responses(*AUTHENTICATED, "http-404"),
    summary="A background job (tenant admin)",
)
async def get_job(
    job_id: UUID, principal: PrincipalDep, services: ServicesDep, tenant_id: TenantQuery = None
) -> JobOut:
    """Status, progress, result or error of one job."""
    tenant = _scope(principal, tenant_id)
    if tenant is None:
        job = await services.jobs.get_any(job_id)
    else:
        job = await services.jobs.get(tenant, job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} not found")
    return JobOut.of(job)


@router.get(
    "",
    responses=error_responses(*AUTHENTICATED, "invalid-cursor"),
    summary="List background jobs (tenant admin)",
)
async def list_jobs(
    principal: PrincipalDep,
    services: ServicesDep,
    tenant_id: TenantQuery = None,
    kind: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            json_schema_extra={"pattern": "^[A-Za-z0-9_-]*$"},  # base64url (empty: none)
            description="next_cursor of the previous page (no other value is valid)",
        ),
    ] = None,
) -> JobPage:
    """Newest first; page with ``next_cursor``."""
    tenant = _scope(principal, tenant_id)
    after = _decode(cursor) if cursor else None
    if tenant is None:
        rows = await services.jobs.page_any(kind=kind, status=status, after=after, limit=limit + 1)
    else:
        rows = await services.jobs.page(
            tenant, kind=kind, status=status, after=after, limit=limit + 1
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return JobPage(
        items=[JobOut.of(r) for r in rows], next_cursor=_encode(rows[-1]) if more else None
    )
