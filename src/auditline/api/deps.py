"""Request dependencies: the shared services and the authenticated principal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from auditline.config import Settings
from auditline.ingest.access import AccessRecorder
from auditline.ingest.writer import EventWriter
from auditline.search.reader import EventReader
from auditline.security.principal import Principal
from auditline.security.tokens import InvalidToken, SigningKey, verify_token
from auditline.storage.database import Connection


@dataclass
class Services:
    """Everything a request may use; created and closed by the app's lifespan."""

    settings: Settings
    pool: AsyncConnectionPool[Connection]
    writer: EventWriter
    reader: EventReader
    access: AccessRecorder
    signing_key: SigningKey


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


_bearer = HTTPBearer(auto_error=False, description="A JWT issued by `auditline token`")


def get_principal(
    services: Annotated[Services, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise InvalidToken("a bearer token is required")
    claims = verify_token(credentials.credentials, services.signing_key, services.settings.auth)
    return Principal.from_claims(claims)


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
