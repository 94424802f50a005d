"""``/.well-known/jwks.json``: the server's public token-verification key (RFC 7517)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from auditline.api.deps import ServicesDep

router = APIRouter(tags=["identity"])


@router.get(
    "/.well-known/jwks.json",
    summary="Public key set for tokens issued by this server",
    response_model=None,
    responses={200: {"content": {"application/jwk-set+json": {}}}},
)
async def jwks(services: ServicesDep) -> JSONResponse:
    """The Ed25519 key (``kid`` = its RFC 7638 thumbprint) that signs `auditline token` JWTs."""
    body: dict[str, Any] = services.security.jwks
    return JSONResponse(
        body, media_type="application/jwk-set+json", headers={"Cache-Control": "max-age=300"}
    )
