"""Authentication over HTTP: every refused token is a 401 and a record; external IdPs via JWKS."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auditline.config import AuthSettings, ClaimMapping, IssuerSettings, RateBudget, Settings
from auditline.runtime import signing_key
from tests.conftest import TokenFactory, bearer
from tests.unit.test_tokens import negative_corpus

IDP = "https://idp.test/realms/acme"


class JwksServer:
    """A real HTTP JWKS endpoint on 127.0.0.1, whose keys the test rotates."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/protocol/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def publish(self, kid: str, private: Any) -> None:
        algorithm = jwt.algorithms.RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else (
            jwt.algorithms.ECAlgorithm)  # fmt: skip
        self.keys.append({**json.loads(algorithm.to_jwk(private.public_key())), "kid": kid})


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    server = JwksServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    server.thread.join()


@pytest.fixture
def settings(settings: Settings, idp: JwksServer) -> Settings:
    keycloak = IssuerSettings(
        issuer=IDP, audience="auditline", jwks_url=idp.url, algorithms=["ES256", "RS256"],
        claims=ClaimMapping(
            subject="preferred_username", role="realm_access.roles", tenants="groups",
            tenant_prefix="/auditline/",
            role_values={"audit-writer": "user", "audit-reader": "auditor", "audit-admin": "admin"},
        ),
    )  # fmt: skip
    settings.auth = AuthSettings(issuers=[keycloak], jwks_min_refresh_seconds=0.5)
    settings.rate_limits.auth_failures_per_client = RateBudget(rate=1, burst=100)
    return settings


def idp_token(private: Any, kid: str, *, role: str, alg: str = "ES256", **extra: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": IDP, "aud": "auditline", "sub": "f1d2-uuid", "preferred_username": "jane",
        "exp": now + 300, "iat": now, "realm_access": {"roles": ["offline_access", role]},
        "groups": ["/staff", "/auditline/acme"], **extra,
    }  # fmt: skip
    return jwt.encode(claims, private, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


def platform_log(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            """SELECT user_id, action, outcome, metadata, message, host(ip_address)
                 FROM events WHERE tenant_id = 'platform' AND action = 'LOGIN' ORDER BY seq"""
        ).fetchall()


def everything_stored(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT coalesce(string_agg(e::text, ' '), '') FROM events e").fetchone()
    assert row is not None
    return str(row[0])


async def test_every_refused_token_is_401_and_recorded_without_the_token(
    client: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    corpus = negative_corpus(signing_key(settings), settings.auth)
    for name, (token, _) in corpus.items():
        response = await client.get("/api/v1/tenants", headers=bearer(token))
        assert response.status_code == 401, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
    records = platform_log(database_url)
    assert [r[3]["reason"] for r in records] == [reason for _, reason in corpus.values()]
    for user_id, action, outcome, metadata, message, ip in records:
        assert (user_id, action, outcome, ip) == ("anonymous", "LOGIN", "failure", "127.0.0.1")
        assert metadata["path"] == "/api/v1/tenants"
        assert message.startswith("authentication failed: ")
    stored = everything_stored(database_url)
    for name, (token, _) in corpus.items():
        signature = token.rsplit(".", 1)[-1]
        assert token not in stored, name
        assert len(signature) < 16 or signature not in stored, name


async def test_missing_and_unsupported_credentials_are_recorded_too(
    client: httpx.AsyncClient, database_url: str, make_token: TokenFactory
) -> None:
    for headers in ({}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}):
        assert (await client.get("/api/v1/tenants", headers=headers)).status_code == 401
    user_for_all = make_token("user", "*")  # signature fine, claims not
    assert (await client.get("/api/v1/tenants", headers=bearer(user_for_all))).status_code == 401
    reasons = [r[3]["reason"] for r in platform_log(database_url)]
    assert reasons == ["missing", "missing", "invalid_claims"]


async def test_local_jwks_endpoint_publishes_the_key_that_verifies_our_tokens(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    (jwk,) = response.json()["keys"]
    assert "d" not in jwk  # the public half only
    token = make_token("admin", "acme")
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    claims = jwt.decode(token, jwt.PyJWK(jwk), algorithms=["EdDSA"], audience="auditline")
    assert claims["tenants"] == ["acme"]


@pytest.mark.usefixtures("tenants")
async def test_external_idp_tokens_work_through_claim_mapping_and_key_rotation(
    client: httpx.AsyncClient, idp: JwksServer, database_url: str
) -> None:
    es_key = ec.generate_private_key(ec.SECP256R1())
    rs_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    idp.publish("2024-es", es_key)

    writer = bearer(idp_token(es_key, "2024-es", role="audit-writer"))
    created = await client.post("/api/v1/logs", json={"action": "LOGIN"}, headers=writer)
    assert created.status_code == 201, created.text
    assert created.json()["tenant_id"] == "acme"  # from the group "/auditline/acme"
    reader = bearer(idp_token(es_key, "2024-es", role="audit-reader"))
    assert (await client.get(f"/api/v1/logs/{created.json()['id']}", headers=reader)).is_success
    assert (
        await client.post("/api/v1/logs", json={"action": "X"}, headers=reader)
    ).status_code == 403
    assert idp.requests == 1  # one fetch served all of that

    # The IdP rotates to a new RSA key. A token signed with it right away is refused: the
    # JWKS was fetched less than jwks_min_refresh_seconds ago, so no refetch yet.
    idp.publish("2025-rs", rs_key)
    rotated = bearer(idp_token(rs_key, "2025-rs", role="audit-writer", alg="RS256"))
    assert (
        await client.post("/api/v1/logs", json={"action": "A"}, headers=rotated)
    ).status_code == 401
    await asyncio.sleep(0.6)
    accepted = await client.post("/api/v1/logs", json={"action": "A"}, headers=rotated)
    assert accepted.status_code == 201, accepted.text
    assert idp.requests == 2
    for i in range(10):  # made-up kids: refused without hammering the IdP
        bogus = bearer(idp_token(rs_key, f"bogus-{i}", role="audit-writer", alg="RS256"))
        assert (
            await client.post("/api/v1/logs", json={"action": "A"}, headers=bogus)
        ).status_code == 401
    assert idp.requests == 2

    # This issuer is not allowed to make platform admins.
    everyone = bearer(idp_token(es_key, "2024-es", role="audit-admin", groups=["/auditline/*"]))
    assert (await client.get("/api/v1/tenants", headers=everyone)).status_code == 401

    with psycopg.connect(database_url) as conn:
        actors = conn.execute(
            """SELECT action, outcome, user_id FROM events
                WHERE tenant_id = 'acme' AND resource_type IN ('audit_log', 'api') ORDER BY seq"""
        ).fetchall()
    # the read and the refused write, both by preferred_username as mapped
    assert actors == [("VIEW", "success", "jane"), ("ACCESS", "failure", "jane")]
