"""What the service records about reads of and changes to the audit log itself.

Every read of a tenant's log and every change to a tenant or its keys becomes an ordinary
event in a log (``ingest.access`` writes them). These are the plain types the services pass
to it: who acted (:class:`Actor`) and the fields of one record (:class:`AccessFields`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol, Required, TypedDict, Unpack

from auditline.domain.events import ActorType, Outcome
from auditline.domain.tenants import TenantId

ACCESS_RESOURCE: Final = "audit_log"
"""The resource type of the service's own records of reads (get, search, export, stats).

Reserved: clients cannot send it. Searches, exports and statistics leave these records out
unless asked (``SearchQuery.access_included``), so an auditor's own searches do not drown
the tenant's activity; they are recorded all the same."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something the service records: a caller of the API, or an operator.

    *subject* is the token's subject, an API key's prefix, or ``cli:<user>``; *request_id*
    ties the record to the HTTP request (None for commands).
    """

    subject: str
    type: ActorType = "user"
    request_id: str | None = None


class AccessFields(TypedDict, total=False):
    """What was done, to what, from where: the fields of one record besides its actor."""

    action: Required[str]
    resource_type: Required[str]
    message: Required[str]
    resource_id: str | None
    metadata: dict[str, Any] | None
    outcome: Outcome
    ip_address: str | None
    user_agent: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AccessLog(Protocol):
    """Where access records go: durably, before the read's answer is returned."""

    async def record(
        self, tenant: TenantId, actor: Actor, **fields: Unpack[AccessFields]
    ) -> None: ...
