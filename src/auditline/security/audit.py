"""Records failed authentication and authorization (OWASP ASVS 16.3) in the right log.

Where a failure is recorded:

* **Authentication failed** (no, malformed, expired, forged or revoked credential): the
  ``platform`` tenant's log, because nothing the request says about its tenant can be
  trusted and writing it into the log it names would let anyone write into any tenant's
  log. One exception: an API key whose secret matched but which is revoked or expired has
  proven its tenant, so that tenant's own log gets the record (its admins want to know a
  revoked key is still in use).
* **Forbidden** (403: the tenant is the caller's own, the role or scopes do not allow the
  action): that tenant's log.
* **Tenant not granted** (404 from tenant resolution): the ``platform`` log, with the
  requested tenant id as the caller typed it; the named tenant may not exist, and probing
  must not write into other tenants' logs.

Records say why (a reason code), who (subject, or the unverified facts about the credential:
algorithm, key id, claimed issuer, API key prefix), from where (address, user agent) and
what (method, path); never the token or key itself.

Flood control: failures are charged to a per-client-address bucket; a client over it gets
429 and no further records until it refills (so one source cannot fill the platform log).
Across all clients, failures beyond a global recording budget are counted instead of
recorded one by one, and the count is attached to the next record that is written.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, replace
from typing import Any

from auditline.config import RateLimitSettings
from auditline.domain.access import Actor
from auditline.domain.tenants import TenantId
from auditline.ingest.access import AccessRecorder
from auditline.security.principal import AuthError, Forbidden, Principal, TenantNotFound
from auditline.security.ratelimit import Decision, MemoryBuckets, RateLimited
from auditline.security.tokens import InvalidToken
from auditline.tenancy.scope import PLATFORM, for_system

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What an access record says about the request; built by the API layer."""

    method: str
    path: str
    client: str | None
    user_agent: str | None
    request_id: str | None

    @property
    def ip_address(self) -> str | None:
        """The client's address as an event holds it: without the zone a link-local IPv6
        peer carries (``fe80::1%eth0``), which PostgreSQL's ``inet`` refuses."""
        try:
            return str(ipaddress.ip_address(self.client.partition("%")[0])) if self.client else None
        except ValueError:
            return None


class AccessAudit:
    def __init__(self, access: AccessRecorder, settings: RateLimitSettings) -> None:
        self._access = access
        self._settings = settings
        # Always in process memory: these budgets protect this process and its writes.
        self._buckets = MemoryBuckets(max_buckets=100_000)
        self._unrecorded = 0

    async def authentication_failed(self, exc: InvalidToken, request: RequestInfo) -> None:
        """Record *exc*; raises :class:`RateLimited` if the client is over its failure budget."""
        per_client = self._settings.auth_failures_per_client
        allowed, tokens = self._buckets.take_now(f"client:{request.client}", per_client)
        if not allowed:
            raise RateLimited([Decision.of("client-auth-failures", per_client, False, tokens)])
        if not self._buckets.take_now("all", self._settings.auth_failure_records)[0]:
            self._unrecorded += 1
            return
        metadata: dict[str, Any] = {"reason": exc.reason, "scheme": exc.scheme, **exc.details}
        tenant = PLATFORM
        if exc.tenant is not None:
            tenant = for_system(exc.tenant, reason="the API key's secret proved its tenant")
        actor = Actor(exc.actor or "anonymous", "service" if exc.actor else "user")
        await self._write(
            tenant, request, actor, action="LOGIN", message=f"authentication failed: {exc}",
            metadata=metadata,
        )  # fmt: skip

    async def authorization_failed(
        self, principal: Principal, exc: Forbidden | TenantNotFound, request: RequestInfo
    ) -> None:
        """Record a 403 in the caller's tenant; a tenant not granted (404) in the platform log."""
        metadata: dict[str, Any]
        if isinstance(exc, Forbidden):
            tenant = exc.tenant or _only_tenant(principal) or PLATFORM
            metadata = {"reason": "forbidden"}
            if exc.permission is not None:
                metadata["permission"] = exc.permission.value
            message = f"access denied: {exc}"
        else:
            tenant = PLATFORM
            metadata = {"reason": "tenant_not_granted", "requested_tenant": str(exc)[:100]}
            message = "access denied: tenant not granted"
        if principal.issuer:
            metadata["issuer"] = principal.issuer
        actor = Actor(principal.subject, principal.actor_type)
        await self._write(
            tenant, request, actor, action="ACCESS", message=message, metadata=metadata
        )

    async def _write(
        self,
        tenant: TenantId,
        request: RequestInfo,
        actor: Actor,
        *,
        action: str,
        message: str,
        metadata: dict[str, Any],
    ) -> None:
        metadata = {**metadata, "method": request.method, "path": request.path[:500]}
        if self._unrecorded:
            metadata["unrecorded_failures_before"] = self._unrecorded
            self._unrecorded = 0
        try:
            await self._access.record(
                tenant, replace(actor, request_id=request.request_id), action=action,
                resource_type="api", resource_id=request.path[:200], message=message,
                metadata=metadata, outcome="failure", ip_address=request.ip_address,
                user_agent=request.user_agent,
            )  # fmt: skip
        except Exception:  # the caller still gets its 401/403/404; the failure is logged
            log.exception("could not record an access failure in tenant %s", tenant)


def _only_tenant(principal: Principal) -> TenantId | None:
    """The caller's one tenant, if it has exactly one client tenant."""
    try:
        return principal.tenant(None)
    except AuthError:
        return None
