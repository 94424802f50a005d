"""Roles, API key scopes, tenant resolution and claim mapping: the access rules as pure logic."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from auditline.config import ClaimMapping
from auditline.security.principal import (
    Forbidden,
    InvalidClaims,
    Permission,
    Principal,
    TenantNotFound,
    TenantRequired,
)

P = Permission


def user(role: str, *tenants: str) -> Principal:
    return Principal.from_claims({"sub": f"{role}-1", "role": role, "tenants": list(tenants)})


def key(*scopes: str) -> Principal:
    return Principal.for_api_key(
        tenant="acme", key_id=uuid.uuid4(), prefix="alk_aaaaaaaaaaaa", scopes=frozenset(scopes)
    )  # type: ignore[arg-type]


# The matrix, column by column: what each principal may do in its own tenant.
MATRIX: dict[str, set[Permission]] = {
    "admin": {P.WRITE_LOGS, P.READ_LOGS, P.EXPORT_LOGS, P.VIEW_STATS, P.CLEANUP_LOGS,
              P.MANAGE_TENANT, P.VERIFY_LOGS},
    "auditor": {P.READ_LOGS, P.EXPORT_LOGS, P.VIEW_STATS, P.VERIFY_LOGS},
    "user": {P.WRITE_LOGS, P.READ_LOGS},
    "key logs:write": {P.WRITE_LOGS},
    "key logs:read": {P.READ_LOGS, P.EXPORT_LOGS, P.VIEW_STATS, P.VERIFY_LOGS},
    "key both": {P.WRITE_LOGS, P.READ_LOGS, P.EXPORT_LOGS, P.VIEW_STATS, P.VERIFY_LOGS},
}  # fmt: skip

PRINCIPALS = {
    "admin": user("admin", "acme"),
    "auditor": user("auditor", "acme"),
    "user": user("user", "acme"),
    "key logs:write": key("logs:write"),
    "key logs:read": key("logs:read"),
    "key both": key("logs:write", "logs:read"),
}


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_each_principal_may_exactly_what_the_matrix_says(name: str) -> None:
    principal = PRINCIPALS[name]
    for permission in Permission:
        if permission in MATRIX[name]:
            assert principal.authorize("acme", permission) == "acme"
        else:
            with pytest.raises(Forbidden) as denied:
                principal.authorize("acme", permission)
            assert denied.value.tenant == "acme"
            assert denied.value.permission is permission


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_another_tenant_is_404_before_any_permission_check(name: str) -> None:
    principal = PRINCIPALS[name]
    for permission in Permission:
        for other in ("globex", "no-such-tenant", "platform", "*"):
            with pytest.raises(TenantNotFound) as missing:
                principal.authorize(other, permission)
            assert str(missing.value) == other  # the same answer whether it exists or not


def test_only_a_platform_admin_manages_tenants_and_reads_the_platform_log() -> None:
    platform = user("admin", "*")
    assert platform.may(P.MANAGE_TENANTS)
    assert not user("admin", "acme").may(P.MANAGE_TENANTS)
    assert platform.authorize("platform", P.READ_LOGS) == "platform"
    assert platform.authorize("platform", P.MANAGE_TENANT) == "platform"
    with pytest.raises(Forbidden, match="written only by the service"):
        platform.authorize("platform", P.WRITE_LOGS)
    assert platform.authorize("anything", P.WRITE_LOGS) == "anything"
    with pytest.raises(TenantRequired):
        platform.authorize(None, P.READ_LOGS)


def test_a_token_naming_the_platform_tenant_does_not_open_it() -> None:
    admin = user("admin", "platform")
    with pytest.raises(TenantNotFound):
        admin.authorize("platform", P.READ_LOGS)
    with pytest.raises(TenantNotFound):
        admin.authorize(None, P.READ_LOGS)


def test_several_tenants_need_a_name_one_defaults() -> None:
    assert user("auditor", "acme").tenant(None) == "acme"
    with pytest.raises(TenantRequired):
        user("auditor", "acme", "globex").tenant(None)
    assert user("auditor", "acme", "globex").tenant("globex") == "globex"


def test_api_keys_act_as_services_on_their_one_tenant() -> None:
    principal = key("logs:write")
    assert (principal.actor_type, principal.role, principal.own_events_only) == (
        "service", None, False,
    )  # fmt: skip
    assert principal.identity.startswith("key:")
    assert principal.tenant(None) == "acme"
    assert user("user", "acme").own_events_only


def test_rate_limit_tenant_is_only_ever_a_granted_one() -> None:
    assert user("admin", "acme").rate_limit_tenant(None) == "acme"
    assert user("admin", "acme").rate_limit_tenant("globex") is None
    assert user("admin", "acme", "globex").rate_limit_tenant(None) is None
    assert user("admin", "*").rate_limit_tenant("globex") == "globex"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"sub": "x", "role": "root", "tenants": ["acme"]}, "no valid role"),
        ({"sub": "x", "tenants": ["acme"]}, "no valid role"),
        ({"sub": "x", "role": ["admin", "user"], "tenants": ["acme"]}, "more than one role"),
        ({"sub": "", "role": "admin", "tenants": ["acme"]}, "no subject"),
        ({"role": "admin", "tenants": ["acme"]}, "no subject"),
        ({"sub": "x", "role": "admin", "tenants": []}, "no tenants"),
        ({"sub": "x", "role": "admin", "tenants": [1]}, "no tenants"),
        ({"sub": "x", "role": "admin", "tenants": {"acme": True}}, "no tenants"),
        ({"sub": "x", "role": "auditor", "tenants": ["*"]}, "only admins"),
        ({"sub": "a\ud800", "role": "admin", "tenants": ["acme"]}, "subject is not valid text"),
        ({"sub": "a\r\nb", "role": "admin", "tenants": ["acme"]}, "subject is not valid text"),
    ],
)
def test_claims_that_describe_no_valid_principal_are_refused(
    claims: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidClaims, match=message):
        Principal.from_claims(claims)


def test_an_external_issuer_grants_all_tenants_only_when_allowed() -> None:
    claims = {"sub": "x", "role": "admin", "tenants": ["*"]}
    with pytest.raises(InvalidClaims, match="may not grant all tenants"):
        Principal.from_claims(claims, ClaimMapping(), issuer="idp", allow_platform_admin=False)
    assert Principal.from_claims(claims, ClaimMapping(), issuer="idp").is_platform_admin


def test_role_values_map_idp_groups_and_ignore_the_rest() -> None:
    mapping = ClaimMapping(
        role="groups", tenants="groups", tenant_prefix="t-",
        role_values={"audit-admins": "admin", "audit-readers": "auditor"},
    )  # fmt: skip
    principal = Principal.from_claims(
        {"sub": "u", "groups": ["everyone", "audit-readers", "t-acme"]}, mapping
    )
    assert (principal.role, principal.tenants) == ("auditor", frozenset({"acme"}))
    with pytest.raises(InvalidClaims, match="more than one role"):
        Principal.from_claims(
            {"sub": "u", "groups": ["audit-admins", "audit-readers", "t-acme"]}, mapping
        )
    single = ClaimMapping(tenants="tenant")
    assert Principal.from_claims(
        {"sub": "u", "role": "user", "tenant": "acme"}, single
    ).tenants == {"acme"}
