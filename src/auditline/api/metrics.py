"""``GET /metrics``: the Prometheus exposition of ``auditline.metrics``.

Not behind tenant authentication (it holds no tenant data: see the labels rule in
``auditline.metrics``), so a Prometheus server can scrape it with no token of a tenant.
``metrics.bearer_token`` makes it require one static token; ``metrics.enabled`` off makes it
a 404. Left out of the OpenAPI document: it is an operator's endpoint, not the API.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request, Response

from auditline.api.deps import ServicesDep

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, services: ServicesDep) -> Response:
    settings = services.settings.metrics
    if not settings.enabled:
        raise HTTPException(404, "Not Found")
    if settings.bearer_token is not None:
        expected = f"Bearer {settings.bearer_token.get_secret_value()}".encode()
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                401, "/metrics requires the configured bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
    body, content_type = services.metrics.render()
    return Response(body, media_type=content_type)
