"""JWT verification (RFC 8725) and JWKS handling, without a database or a network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditline.config import AuthSettings, ClaimMapping, IssuerSettings
from auditline.security.jwks import parse_jwks
from auditline.security.tokens import (
    InvalidToken,
    SigningKey,
    TokenVerifier,
    _kid,
    issue_token,
    jwks_document,
    load_or_create_signing_key,
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    parts = [json.dumps(header).encode(), json.dumps(claims).encode()]
    return ".".join([*(b64(p) for p in parts), b64(signature)])


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """HMAC-signed by hand: PyJWT itself refuses a PEM as an HMAC secret."""
    signing_input = ".".join(b64(json.dumps(p).encode()) for p in (header, claims))
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def negative_corpus(key: SigningKey, settings: AuthSettings) -> dict[str, tuple[str, str]]:
    """name -> (token, expected reason): every way a token must be refused (RFC 8725)."""
    now = int(time.time())
    good = {
        "iss": settings.issuer, "aud": settings.audience, "sub": "mallory", "role": "admin",
        "tenants": ["acme"], "iat": now, "exp": now + 600,
    }  # fmt: skip
    header = {"alg": "EdDSA", "kid": key.kid}

    def signed(claims: dict[str, Any] | None = None, **headers: Any) -> str:
        return jwt.encode(claims or good, key.private, algorithm="EdDSA",
                          headers={"kid": key.kid, **headers})  # fmt: skip

    stranger = Ed25519PrivateKey.generate()
    public_pem = key.public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    valid = signed()
    head, body, sig = valid.split(".")
    flipped = bytearray(base64.urlsafe_b64decode(sig + "=="))
    flipped[0] ^= 1
    stranger_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(stranger.public_key()))
    return {
        "alg_none": (unsigned({"alg": "none", "kid": key.kid}, good), "bad_alg"),
        "alg_none_capitalised": (unsigned({"alg": "None", "kid": key.kid}, good), "bad_alg"),
        "hs256_signed_with_public_key": (
            hs256({**header, "alg": "HS256"}, good, public_pem),
            "bad_alg",
        ),
        "rs256_from_foreign_key": (
            jwt.encode(good, rsa_key, algorithm="RS256", headers={"kid": key.kid}),
            "bad_alg",
        ),
        "expired": (signed({**good, "exp": now - 3600}), "expired"),
        "no_exp": (signed({k: v for k, v in good.items() if k != "exp"}), "missing_claim"),
        "not_yet_valid": (signed({**good, "nbf": now + 3600}), "not_yet_valid"),
        "issued_in_the_future": (signed({**good, "iat": now + 3600}), "not_yet_valid"),
        "wrong_audience": (signed({**good, "aud": "someone-else"}), "bad_audience"),
        "no_audience": (signed({k: v for k, v in good.items() if k != "aud"}), "missing_claim"),
        "wrong_issuer": (signed({**good, "iss": "https://evil.example"}), "unknown_issuer"),
        "bad_signature": (f"{head}.{body}.{b64(bytes(flipped))}", "bad_signature"),
        "signed_by_stranger_with_our_kid": (
            jwt.encode(good, stranger, algorithm="EdDSA", headers={"kid": key.kid}),
            "bad_signature",
        ),
        "unknown_kid": (signed(kid="not-our-key"), "unknown_kid"),
        "no_kid": (jwt.encode(good, key.private, algorithm="EdDSA"), "unknown_kid"),
        "jku_injection": (
            jwt.encode(
                good,
                stranger,
                algorithm="EdDSA",
                headers={"kid": "x", "jku": "https://evil.example/jwks.json"},
            ),
            "forbidden_header",
        ),
        "embedded_jwk": (
            jwt.encode(good, stranger, algorithm="EdDSA", headers={"jwk": stranger_jwk}),
            "forbidden_header",
        ),
        "x5u_on_valid_signature": (signed(x5u="https://evil.example/cert.pem"), "forbidden_header"),
        "x5c_on_valid_signature": (signed(x5c=["MIIB"]), "forbidden_header"),
        "crit_extension": (signed(crit=["b64"], b64=True), "forbidden_header"),
        "wrong_type": (signed(typ="secevent+jwt"), "bad_type"),
        "malformed_garbage": ("not-a-token", "malformed"),
        "malformed_segments": ("a.b.c", "malformed"),
        "malformed_payload": (f"{head}.{b64(b'[1,2]')}.{sig}", "malformed"),
        "oversized": (signed({**good, "pad": "x" * settings.max_token_bytes}), "too_large"),
    }


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return load_or_create_signing_key(tmp_path / "key.pem")[0]


@pytest.fixture
def auth() -> AuthSettings:
    return AuthSettings()


async def test_a_token_issued_here_verifies(key: SigningKey, auth: AuthSettings) -> None:
    token = issue_token(key, auth, subject="alice", role="admin", tenants=["acme"], ttl_seconds=60)
    verified = await TokenVerifier(key, auth).verify(token)
    assert verified.claims["sub"] == "alice"
    assert verified.issuer.local


CORPUS = (
    "alg_none", "alg_none_capitalised", "hs256_signed_with_public_key", "rs256_from_foreign_key",
    "expired", "no_exp", "not_yet_valid", "issued_in_the_future", "wrong_audience",
    "no_audience", "wrong_issuer", "bad_signature", "signed_by_stranger_with_our_kid",
    "unknown_kid", "no_kid", "jku_injection", "embedded_jwk", "x5u_on_valid_signature",
    "x5c_on_valid_signature", "crit_extension", "wrong_type", "malformed_garbage",
    "malformed_segments", "malformed_payload", "oversized",
)  # fmt: skip


def test_corpus_names_are_complete(key: SigningKey, auth: AuthSettings) -> None:
    assert sorted(negative_corpus(key, auth)) == sorted(CORPUS)


@pytest.mark.parametrize("name", CORPUS)
async def test_negative_corpus_is_refused_with_its_reason(
    name: str, key: SigningKey, auth: AuthSettings
) -> None:
    token, reason = negative_corpus(key, auth)[name]
    with pytest.raises(InvalidToken) as refused:
        await TokenVerifier(key, auth).verify(token)
    assert refused.value.reason == reason, str(refused.value)
    assert token not in json.dumps(refused.value.details)


def test_kid_is_the_rfc7638_thumbprint_published_in_the_jwks(key: SigningKey) -> None:
    (jwk,) = jwks_document(key)["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert jwk["kid"] == key.kid == _kid(key.public)
    # A verifier that only knows the published JWK accepts our tokens.
    public = jwt.PyJWK(jwk)
    token = issue_token(key, AuthSettings(), subject="s", role="user", tenants=["t"],
                        ttl_seconds=60)  # fmt: skip
    assert jwt.decode(token, public, algorithms=["EdDSA"], audience="auditline")["sub"] == "s"


# -- external issuers ------------------------------------------------------------------

IDP = "https://idp.example"


class FakeIdp:
    """A JWKS endpoint in memory, with a clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.fetches = 0
        self.keys: dict[str, Any] = {}
        self.fail = False

    def rotate_in(self, kid: str, private: Any) -> None:
        self.keys[kid] = {**_public_jwk(private), "kid": kid, "use": "sig"}

    async def fetch(self, url: str, timeout_seconds: float) -> bytes:
        self.fetches += 1
        if self.fail:
            raise OSError("connection refused")
        return json.dumps({"keys": list(self.keys.values())}).encode()

    def clock(self) -> float:
        return self.now


def _public_jwk(private: Any) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else (
        jwt.algorithms.ECAlgorithm)  # fmt: skip
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(private.public_key()))
    return jwk


def idp_settings(**overrides: Any) -> AuthSettings:
    issuer = IssuerSettings(issuer=IDP, audience="auditline-api", jwks_url=f"{IDP}/jwks",
                            algorithms=["RS256", "ES256"], **overrides)  # fmt: skip
    return AuthSettings(issuers=[issuer], jwks_min_refresh_seconds=30, jwks_cache_seconds=3600)


def idp_token(private: Any, kid: str, alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": IDP, "aud": "auditline-api", "sub": "u-1", "exp": now + 600, "iat": now,
            "role": "auditor", "tenants": ["acme"], **claims}  # fmt: skip
    return jwt.encode(body, private, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]


async def test_unknown_kid_refreshes_the_jwks_at_a_bounded_rate(
    key: SigningKey, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    idp = FakeIdp()
    idp.rotate_in("k1", rsa_keys[0])
    verifier = TokenVerifier(key, idp_settings(), fetch=idp.fetch, clock=idp.clock)
    assert (await verifier.verify(idp_token(rsa_keys[0], "k1"))).claims["sub"] == "u-1"
    assert idp.fetches == 1
    for i in range(20):  # made-up kids: refused, and no fetch storm
        with pytest.raises(InvalidToken, match="unknown key"):
            await verifier.verify(idp_token(rsa_keys[0], f"bogus-{i}"))
    assert idp.fetches == 1
    idp.rotate_in("k2", rsa_keys[1])  # the IdP rotates
    with pytest.raises(InvalidToken):  # within the minimum interval: not fetched yet
        await verifier.verify(idp_token(rsa_keys[1], "k2"))
    idp.now += 31
    assert (await verifier.verify(idp_token(rsa_keys[1], "k2"))).claims["sub"] == "u-1"
    assert idp.fetches == 2
    del idp.keys["k1"]  # retired: known until the cache expires, then gone
    assert await verifier.verify(idp_token(rsa_keys[0], "k1"))
    idp.now += 3600
    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(idp_token(rsa_keys[0], "k1"))


async def test_an_unreachable_idp_keeps_the_keys_already_known(
    key: SigningKey, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    idp = FakeIdp()
    idp.rotate_in("k1", rsa_keys[0])
    verifier = TokenVerifier(key, idp_settings(), fetch=idp.fetch, clock=idp.clock)
    await verifier.verify(idp_token(rsa_keys[0], "k1"))
    idp.fail = True
    idp.now += 4000  # cache expired, refresh fails
    assert await verifier.verify(idp_token(rsa_keys[0], "k1"))
    assert idp.fetches == 2


async def test_external_issuer_algorithm_allow_list_and_confusion(
    key: SigningKey, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    idp = FakeIdp()
    idp.rotate_in("k1", rsa_keys[0])
    verifier = TokenVerifier(key, idp_settings(), fetch=idp.fetch, clock=idp.clock)
    public_pem = (
        rsa_keys[0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    claims = {"iss": IDP, "aud": "auditline-api", "sub": "u", "exp": now + 60}
    cases = {
        "hs256 with the IdP's public key": hs256({"alg": "HS256", "kid": "k1"}, claims, public_pem),
        "EdDSA not allowed for this issuer": jwt.encode(
            claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "k1"}
        ),
        "ES256 claimed for an RSA key": jwt.encode(
            claims,
            ec.generate_private_key(ec.SECP256R1()),
            algorithm="ES256",
            headers={"kid": "k1"},
        ),
        "PS256 not allowed": jwt.encode(
            claims, rsa_keys[0], algorithm="PS256", headers={"kid": "k1"}
        ),
    }
    for name, token in cases.items():
        with pytest.raises(InvalidToken) as refused:
            await verifier.verify(token)
        assert refused.value.reason in {"bad_alg", "unknown_kid"}, name


async def test_hs256_only_with_a_configured_shared_secret(key: SigningKey) -> None:
    secret = "s" * 40
    legacy = IssuerSettings(
        issuer="legacy", audience="auditline", algorithms=["HS256"], shared_secret=secret
    )
    settings = AuthSettings(issuers=[legacy])
    verifier = TokenVerifier(key, settings)
    now = int(time.time())
    claims = {"iss": "legacy", "aud": "auditline", "sub": "svc", "exp": now + 60}
    good = jwt.encode(claims, secret, algorithm="HS256")
    assert (await verifier.verify(good)).claims["sub"] == "svc"
    forged = jwt.encode(claims, "t" * 40, algorithm="HS256")
    with pytest.raises(InvalidToken, match="signature"):
        await verifier.verify(forged)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"algorithms": ["HS256"], "shared_secret": "short"}, "at least 32 bytes"),
        ({"algorithms": ["HS256", "RS256"], "shared_secret": "s" * 40}, "cannot be combined"),
        ({"algorithms": ["RS256"]}, "needs a jwks_url"),
        ({"jwks_url": "http://idp.example/jwks"}, "must be https"),
        ({"jwks_url": "https://idp.example/jwks", "shared_secret": "s" * 40}, "only for HS256"),
    ],
)
def test_issuer_configuration_is_checked(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IssuerSettings(issuer="x", audience="y", **overrides)
    assert IssuerSettings(issuer="x", audience="y", jwks_url="http://127.0.0.1:1/jwks")


def test_jwks_parsing_keeps_only_usable_signature_keys(rsa_keys: list[rsa.RSAPrivateKey]) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    rsa_jwk = _public_jwk(rsa_keys[0])
    document = {"keys": [
        {**rsa_jwk, "kid": "good"},
        {**rsa_jwk, "kid": "enc", "use": "enc"},
        {**_public_jwk(weak), "kid": "weak"},
        {"kty": "oct", "k": b64(b"k" * 32), "kid": "symmetric", "alg": "HS256"},
        {**rsa_jwk, "kid": "declared-other", "alg": "RS512"},
        {**rsa_jwk},  # no kid
        {"kty": "EC", "crv": "P-256", "kid": "broken", "x": "AA", "y": "AA"},
        "not-an-object",
    ]}  # fmt: skip
    keys = parse_jwks(json.dumps(document).encode(), frozenset({"RS256", "ES256", "HS256"}))
    assert list(keys) == ["good"]
    assert keys["good"].algorithm_name == "RS256"


def test_claim_mapping_reads_nested_and_url_shaped_claims() -> None:
    from auditline.security.principal import Principal

    keycloak = {
        "sub": "kc-1",
        "realm_access": {"roles": ["offline_access", "auditline-auditor"]},
        "groups": ["/staff", "tenant:acme", "tenant:globex"],
        "https://auditline.example/tenant": "ignored",
    }
    mapping = ClaimMapping(role="realm_access.roles", tenants="groups", tenant_prefix="tenant:",
                           role_values={"auditline-auditor": "auditor"})  # fmt: skip
    principal = Principal.from_claims(keycloak, mapping, issuer="kc")
    assert (principal.role, principal.tenants) == ("auditor", frozenset({"acme", "globex"}))
    auth0 = {"sub": "a0|1", "https://auditline.example/role": "admin",
             "https://auditline.example/tenants": ["acme"]}  # fmt: skip
    mapping = ClaimMapping(role="https://auditline.example/role",
                           tenants="https://auditline.example/tenants")  # fmt: skip
    assert Principal.from_claims(auth0, mapping).role == "admin"
