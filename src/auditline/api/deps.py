"""Request dependencies: the shared services, the authenticated principal, its actor.

``get_principal`` is the one gate every authenticated route passes: it authenticates the
bearer credential (JWT of a trusted issuer, or API key), records a failure in the right log
(see ``security.audit``), and charges the request to its rate-limit buckets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from auditline.domain.access import Actor
from auditline.security.audit import RequestInfo
from auditline.security.principal import Forbidden, Principal, TenantNotFound
from auditline.security.ratelimit import Kind, RateLimited
from auditline.security.tokens import InvalidToken
from auditline.services import Services


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


_bearer = HTTPBearer(
    auto_error=False,
    description="A JWT (from `auditline token` or a trusted identity provider) or an API key",
)

UNKNOWN_QUERY = "unknown_query"
"""Request state: the query parameters the route does not declare (``api.routing``)."""

_INGEST_PATHS = frozenset({"/api/v1/logs", "/api/v1/logs/bulk"})


def request_info(request: Request) -> RequestInfo:
    return RequestInfo(
        method=request.method,
        path=request.url.path,
        client=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        request_id=getattr(request.state, "request_id", None),
    )


def _rate_kind(request: Request) -> Kind:
    scope = request.scope
    return "ingest" if scope["method"] == "POST" and scope["path"] in _INGEST_PATHS else "read"


async def get_principal(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    try:
        principal, _ = await authenticate(
            services,
            credentials.credentials if credentials else None,
            lambda: request_info(request),
        )
    except RateLimited as limited:
        request.state.ratelimit = limited.decisions
        raise
    request.state.principal = principal
    hint = request.path_params.get("tenant_id") or request.query_params.get("tenant_id")
    # For the request log: the tenant named before the body, if granted (else unknown).
    request.state.tenant = principal.rate_limit_tenant(hint)
    try:
        decisions = await charge(services, principal, _rate_kind(request), hint)
    except RateLimited as exc:
        request.state.ratelimit = exc.decisions
        raise
    if decisions is not None:
        request.state.ratelimit = decisions
    _refuse_unknown_query(request)
    return principal


async def principal_of(request: Request, services: Services) -> Principal:
    """``get_principal`` with its dependencies solved here rather than by FastAPI (for
    ``api.routing.ModelBodyRoute``'s direct calls)."""
    return await get_principal(request, services, await _bearer(request))


async def authenticate(
    services: Services, credential: str | None, info: Callable[[], RequestInfo]
) -> tuple[Principal, float | None]:
    """The principal of *credential* and when it expires, or ``InvalidToken`` (recorded in
    the right log first, with the request *info* returns; that record may raise
    ``RateLimited``). HTTP requests and WebSocket streams authenticate through this one
    function. *info* is called only on a failure: building it parses the URL, a cost every
    request would pay otherwise."""
    security = services.security
    try:
        if credential is None:
            raise InvalidToken("a bearer token is required", reason="missing", scheme="none")
        return await security.authenticator.authenticate_until(credential)
    except InvalidToken as exc:
        try:
            await security.audit.authentication_failed(exc, info())
        except RateLimited as limited:
            raise limited from None
        raise


async def charge(services: Services, principal: Principal, kind: Kind, hint: str | None) -> Any:
    """Charge one request (or one stream) to its rate-limit buckets; ``RateLimited``
    when they are empty. Returns the decisions (for the response headers), or None when
    limits are off."""
    limits = services.security.limits
    if limits is None:
        return None
    return await limits.check(
        kind=kind, principal=principal.identity, tenant=principal.rate_limit_tenant(hint)
    )


async def record_denial(request: Request, exc: Forbidden | TenantNotFound) -> None:
    """Record a 403, or a 404 for a tenant not granted (called by the error handlers)."""
    principal = getattr(request.state, "principal", None)
    services = getattr(request.app.state, "services", None)
    if isinstance(principal, Principal) and isinstance(services, Services):
        await services.security.audit.authorization_failed(principal, exc, request_info(request))


async def get_actor(
    request: Request, principal: Annotated[Principal, Depends(get_principal)]
) -> Actor:
    """The caller as the records of its reads and changes name it."""
    return Actor(principal.subject, principal.actor_type, request.state.request_id)


def _refuse_unknown_query(request: Request) -> None:
    """422 for the query parameters the route does not declare, as search's models do
    (noted by ``api.routing.ModelBodyRoute``; raised here, once the caller is known)."""
    unknown: list[tuple[str, str]] | None = getattr(request.state, UNKNOWN_QUERY, None)
    if unknown:
        raise RequestValidationError(
            [
                {"type": "extra_forbidden", "loc": ("query", name),
                 "msg": "Extra inputs are not permitted", "input": value}
                for name, value in unknown
            ]
        )  # fmt: skip


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ActorDep = Annotated[Actor, Depends(get_actor)]
