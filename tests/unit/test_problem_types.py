"""Every problem type the code can answer with is listed, in docs/api.md and in the OpenAPI
document, with the status it is sent with."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest

from auditline.api.errors import problem
from auditline.api.problems import (
    HTTP_KINDS,
    PROBLEM_TYPES,
    ProblemKind,
    http_kind,
    reference_rows,
    type_uri,
)
from auditline.app import create_app

ROOT = Path(__file__).parents[2]
SOURCES = sorted((ROOT / "src" / "auditline").rglob("*.py"))


def test_docs_list_exactly_the_problem_types() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    generated = text.split("<!-- generated:begin -->\n")[1].split("<!-- generated:end -->")[0]
    assert generated.splitlines() == reference_rows()


def test_the_catalogue_is_the_closed_set_of_kinds() -> None:
    assert list(PROBLEM_TYPES) == list(get_args(ProblemKind))


def _first_arguments(*names: str) -> list[ast.expr]:
    """The first argument of every call of a function of one of these names in the sources."""
    found: list[ast.expr] = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in names
                and node.args
            ):
                found.append(node.args[0])
    return found


def _literal_kinds() -> set[str]:
    """The kinds ``problem(...)`` and ``type_uri(...)`` are called with, where literal."""
    return {a.value for a in _first_arguments("problem", "type_uri") if isinstance(a, ast.Constant)}


def test_every_kind_the_code_names_is_catalogued() -> None:
    named = _literal_kinds()
    assert len(named) >= 20  # the scan sees the error handlers
    assert named <= set(PROBLEM_TYPES)


def _raised_statuses() -> set[int]:
    """The status of every ``HTTPException(<literal>, ...)`` raised in the sources."""
    statuses: set[int] = set()
    for status in _first_arguments("HTTPException"):
        if isinstance(status, ast.Constant):
            statuses.add(status.value)
        elif isinstance(status, ast.Attribute):  # status.HTTP_404_NOT_FOUND
            statuses.add(int(status.attr.split("_")[1]))
    return statuses


def test_every_http_exception_the_code_raises_has_its_own_type() -> None:
    raised = _raised_statuses()
    assert {400, 404, 415} <= raised  # the scan sees them
    # 405 is Starlette's routing; 413 and 408 the edge middleware's (raised by status).
    assert raised | {405} <= set(HTTP_KINDS)
    assert all(PROBLEM_TYPES[kind].status == status for status, kind in HTTP_KINDS.items())
    assert http_kind(418) == "http-error"


@pytest.mark.parametrize("kind", [k for k in get_args(ProblemKind) if k != "http-error"])
def test_a_problem_is_sent_with_its_catalogued_status(kind: ProblemKind) -> None:
    response = problem(kind, "Title", "detail")
    assert response.status_code == PROBLEM_TYPES[kind].status
    assert response.media_type == "application/problem+json"
    assert bytes(response.body).startswith(b'{"type":"' + type_uri(kind).encode() + b'"')


def _documented_types(document: dict[str, Any]) -> dict[int, set[str]]:
    by_status: dict[int, set[str]] = {}
    for path_item in document["paths"].values():
        for operation in path_item.values():
            for status, response in operation["responses"].items():
                for media_type, content in response.get("content", {}).items():
                    enum = content.get("schema", {}).get("properties", {}).get("type", {})
                    if "enum" in enum:
                        assert media_type == "application/problem+json"
                        by_status.setdefault(int(status), set()).update(enum["enum"])
    return by_status


def test_the_document_names_catalogued_types_under_their_status() -> None:
    document = create_app().openapi()
    by_status = _documented_types(document)
    listed = {uri for uris in by_status.values() for uri in uris}
    assert listed <= {type_uri(kind) for kind in PROBLEM_TYPES}
    status_of = {type_uri(kind): problem.status for kind, problem in PROBLEM_TYPES.items()}
    for status, uris in by_status.items():
        assert {status_of[uri] for uri in uris} == {status}
    # Every type an operation can answer with is documented somewhere, except those of no
    # operation in the document (/metrics, unexpected failures, the framework's others).
    not_operations = {"http-401", "http-405", "internal", "http-error"}
    assert {type_uri(k) for k in PROBLEM_TYPES if k not in not_operations} <= listed
    assert "Problem" in document["components"]["schemas"]


async def test_a_405_names_every_method_of_the_path() -> None:
    # Routing answers before any dependency, so no services (no lifespan) are needed.
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.options("/api/v1/logs")
        assert answer.status_code == 405
        assert answer.headers["allow"] == "GET, POST"  # the router said GET only
        assert answer.json()["type"] == type_uri("http-405")
        assert (await client.get("/api/v1/logs/bulk")).headers["allow"] == "POST"
        tenant = await client.delete("/api/v1/tenants/acme")
        assert tenant.headers["allow"] == "GET, PATCH"
