"""A ``TenantId`` is made in exactly two places: from an authorised principal, or for system
work with its reason named (``domain.tenants.TenantId``). Anything else fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import auditline
from auditline.domain.tenants import PLATFORM_TENANT
from auditline.tenancy.scope import PLATFORM, for_system

SOURCE = Path(auditline.__file__).parent
MAKERS = {Path("security/principal.py"), Path("tenancy/scope.py")}


def _tenant_id_constructions(tree: ast.AST) -> list[int]:
    """Lines that call ``TenantId(...)`` (under any alias) or cast something to it."""
    names = {"TenantId"} | {
        alias.asname
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name == "TenantId" and alias.asname
    }
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name in names:
            lines.append(node.lineno)
        elif name == "cast" and node.args:
            spelled = ast.unparse(node.args[0]).strip("'\"")
            if spelled.split(".")[-1] in names:
                lines.append(node.lineno)
    return lines


def test_tenant_ids_are_made_only_by_the_principal_and_for_system_work() -> None:
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        lines = _tenant_id_constructions(ast.parse(path.read_text(), str(path)))
        if lines:
            found[path.relative_to(SOURCE)] = lines
    assert set(found) == MAKERS, (
        "TenantId made outside security/principal.py and tenancy/scope.py: "
        f"{ {str(p): n for p, n in found.items() if p not in MAKERS} }; use "
        "Principal.authorize/tenant for a caller's request, tenancy.scope.for_system "
        "(with the reason) for work no caller asked for"
    )


@pytest.mark.parametrize(
    "source",
    [
        "TenantId('acme')",
        "domain.TenantId(x)",
        "cast(TenantId, value)",
        "typing.cast('TenantId', value)",
        "from auditline.domain.tenants import TenantId as T\nx = 1\nT(x)",
    ],
)
def test_the_scan_sees_every_spelling_of_a_construction(source: str) -> None:
    assert _tenant_id_constructions(ast.parse(source)) == [source.count("\n") + 1]


def test_the_scan_ignores_annotations_and_other_calls() -> None:
    tree = ast.parse("def f(t: TenantId) -> TenantId:\n    return cast(str, t) or g(TenantId)")
    assert _tenant_id_constructions(tree) == []


@pytest.mark.parametrize("reason", ["", "   "])
def test_system_work_must_name_its_reason(reason: str) -> None:
    with pytest.raises(ValueError, match="reason"):
        for_system("acme", reason=reason)


def test_the_platform_log_is_the_platform_tenant() -> None:
    assert PLATFORM == PLATFORM_TENANT == "platform"
    assert for_system("acme", reason="a test") == "acme"
