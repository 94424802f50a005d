"""ModelBodyRoute: pydantic reads the body's bytes, and clients cannot tell the difference."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import starlette.requests
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from hypothesis import given, settings
from hypothesis import strategies as st

from auditline.api.errors import install_error_handlers
from auditline.api.routing import ModelBodyRoute
from auditline.api.schemas import BulkIn


def make_app(route_class: type[APIRoute]) -> FastAPI:
    router = APIRouter(route_class=route_class)

    @router.post("/bulk")
    async def create(body: BulkIn) -> dict[str, Any]:
        # repr: the body may hold what JSON cannot spell back (a lone surrogate, NaN)
        return {"type": type(body).__name__, "body": repr(body.model_dump())}

    app = FastAPI()
    install_error_handlers(app)  # the service's problem+json answers, as clients see them
    app.include_router(router)
    return app


STANDARD, DIRECT = make_app(APIRoute), make_app(ModelBodyRoute)


async def post(app: FastAPI, content: bytes, content_type: str | None) -> tuple[int, Any]:
    headers = {} if content_type is None else {"content-type": content_type}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/bulk", content=content, headers=headers)
    return response.status_code, response.json()


def both(content: bytes, content_type: str | None = "application/json") -> tuple[Any, Any]:
    """(status, body) from FastAPI's standard route and from ModelBodyRoute."""

    async def run() -> tuple[Any, Any]:
        standard = await post(STANDARD, content, content_type)
        return standard, await post(DIRECT, content, content_type)

    return asyncio.run(run())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
valid_fields = {
    "timestamp": st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    "ip_address": st.ip_addresses().map(str),
    "id": st.uuids().map(str),
    "user_id": st.text(min_size=1, max_size=5),
    "metadata": st.dictionaries(st.text(max_size=3), json_values, max_size=3),
    "severity": st.sampled_from(["INFO", "WARNING", "ERROR", "CRITICAL"]),
    "outcome": st.sampled_from(["success", "failure"]),
}
valid_events = st.fixed_dictionaries(
    {"action": st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True)}, optional=valid_fields
)
# Each field may also carry what it must not: another type, a bad spelling, an unknown key.
any_events = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["LOGIN", "login", "", "X" * 70]) | json_values,
        "timestamp": st.sampled_from(["2026-01-01T00:00:00", "x"]) | json_values,
        "ip_address": st.sampled_from(["300.1.1.1", "::ffff:1.2.3.4"]) | json_values,
        "id": json_values,
        "metadata": json_values,
        "severity": st.sampled_from(["info"]) | json_values,
        "unknown": json_values,
    },
)
documents = (
    st.fixed_dictionaries({"events": st.lists(valid_events, min_size=1, max_size=3)})
    | st.fixed_dictionaries({"events": st.lists(valid_events | any_events, max_size=3)})
    | json_values
)


@settings(max_examples=150, deadline=None)
@given(documents)
def test_any_json_document_gets_the_same_answer_as_from_fastapis_own_parsing(doc: Any) -> None:
    standard, direct = both(json.dumps(doc).encode())
    assert direct == standard


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"events": [', "application/json"),  # truncated
        (b'{"events": [{"action": "A", "metadata": {"x": NaN}}]}', "application/json"),
        (b'{"events": [{"action": "A", "metadata": {"n": 1e400}}]}', "application/json"),
        (b'{"events": [{"action": "A"}]}', "application/merge-patch+json"),
        (b'{"events": [{"action": "A"}]}', "application/json; charset=UTF-8"),
        (b"", "application/json"),
    ],
)
def test_edge_cases_get_the_same_answer_as_from_fastapis_own_parsing(
    content: bytes, content_type: str | None
) -> None:
    standard, direct = both(content, content_type)
    assert direct == standard


@pytest.mark.parametrize(
    ("content", "content_type", "pointer"),
    [
        (b'{"events": [{"action": "A", "metadata": {"x": "\\ud800"}}]}', "application/json",
         "/events/0/metadata/x"),
        (b'{"events": [{"action": "A", "user_id": "u", "user_id": "v"}]}', "application/json",
         "/events/0/user_id"),
        (b'{"events": [{"action": "A", "metadata": {"a": {"b": 1, "b": 2}}}]}', "application/json",
         "/events/0/metadata/a/b"),
    ],
)  # fmt: skip
def test_what_breaks_i_json_is_refused_with_a_pointer_where_fastapi_took_it(
    content: bytes, content_type: str, pointer: str
) -> None:
    standard, direct = both(content, content_type)

    assert standard[0] == 200
    assert direct[0] == 422
    assert [e["pointer"] for e in direct[1]["errors"]] == [pointer]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"events": [{"action": "A"}]}', None),
        (b'{"events": [{"action": "A"}]}', "text/plain"),
        (b"events=1", "application/x-www-form-urlencoded"),
        (b'{"events": [{"action": "A"}]}', "application/json; charset=utf-16"),
        ('{"events": [{"action": "A"}]}'.encode("utf-16"), "application/json"),
        (b'{"events": [{"action": "caf\xe9"}]}', "application/json"),  # Latin-1
    ],
)
def test_what_is_not_json_in_utf8_is_a_415(content: bytes, content_type: str | None) -> None:
    standard, direct = both(content, content_type)

    assert standard[0] in (200, 400, 422)  # FastAPI took it, or said "a valid dictionary"
    assert direct[0] == 415
    assert direct[1]["status"] == 415


def test_a_valid_body_is_not_parsed_by_the_standard_json_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(_: bytes) -> None:
        raise AssertionError("the body went through json.loads")

    monkeypatch.setattr(starlette.requests, "json", SimpleNamespace(loads=refuse))
    body = {"events": [{"action": "LOGIN", "metadata": {"a": [1, 2.5, None]}}]}
    status, answer = asyncio.run(post(DIRECT, json.dumps(body).encode(), "application/json"))
    assert status == 200
    assert answer["type"] == "BulkIn"
    assert "'metadata': {'a': [1, 2.5, None]}" in answer["body"]


def test_the_openapi_document_is_fastapis_own() -> None:
    assert DIRECT.openapi()["paths"] == STANDARD.openapi()["paths"]
    assert DIRECT.openapi()["components"] == STANDARD.openapi()["components"]
