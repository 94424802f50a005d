"""Public keys, no authentication: ``/.well-known/jwks.json`` (token verification, RFC 7517)
and ``/.well-known/auditline-checkpoint-key`` (checkpoint verification, signed-note format)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

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


@router.get(
    "/.well-known/auditline-checkpoint-key",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
    summary="The checkpoint verifier key (signed-note format)",
    tags=["integrity"],
)
async def checkpoint_key(services: ServicesDep) -> PlainTextResponse:
    """``<name>+<key id>+<base64(0x01 || Ed25519 public key)>``: what `auditline verify`
    and signed-note tools take to check this server's checkpoints. Fetch it once and keep
    it: a key that changes under you is itself a warning."""
    return PlainTextResponse(
        services.checkpoint_verifier.vkey + "\n", headers={"Cache-Control": "max-age=300"}
    )
