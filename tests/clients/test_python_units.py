"""The SDK's pure parts: retry decisions and the reading of error answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from auditline_client import (
    NO_RETRIES,
    Conflict,
    Forbidden,
    NetworkError,
    NotFound,
    NotSealed,
    ProblemError,
    Retries,
    ServerError,
)
from auditline_client._http import query
from auditline_client.errors import problem_error
from auditline_client.stream import _Protocol

REQUEST = httpx.Request("GET", "http://audit.test/api/v1/logs")


def answer(status: int, retry_after: str | None = None, body: bytes = b"") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers, content=body, request=REQUEST)


def test_retry_after_is_waited_for_unless_it_is_too_long() -> None:
    retries = Retries(max_delay=30)
    assert retries.wait_after(1, answer(429, "7"), idempotent=True) == 7
    assert retries.wait_after(1, answer(503, "31"), idempotent=True) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    wait = retries.wait_after(1, answer(429, later), idempotent=True)
    assert wait is not None
    assert 15 < wait <= 20


def test_backoff_grows_and_stops_after_the_last_attempt() -> None:
    retries = Retries(attempts=4, backoff=1, max_delay=3)
    waits = [retries.wait_after(n, answer(503), idempotent=True) for n in (1, 2, 3)]
    assert all(w is not None and 0 <= w <= 3 for w in waits)
    assert retries.wait_after(4, answer(503), idempotent=True) is None
    assert NO_RETRIES.wait_after(1, answer(429, "1"), idempotent=True) is None


def test_what_is_not_idempotent_is_repeated_only_when_it_cannot_have_been_done() -> None:
    retries = Retries()
    assert retries.wait_after(1, answer(429, "1"), idempotent=False) == 1
    assert retries.wait_after(1, answer(503, "1"), idempotent=False) is None
    refused = httpx.ConnectError("connection refused", request=REQUEST)
    lost = httpx.ReadTimeout("timed out", request=REQUEST)
    assert retries.wait_after(1, refused, idempotent=False) is not None
    assert retries.wait_after(1, lost, idempotent=False) is None
    assert retries.wait_after(1, lost, idempotent=True) is not None
    assert retries.wait_after(1, answer(404), idempotent=True) is None


def test_problem_answers_become_their_exception_and_anything_else_still_an_error() -> None:
    problem = b'{"type": "https://auditline.dev/problems/http-404", "title": "Not Found", '
    problem += b'"status": 404, "detail": "event x not found", "request_id": "r-1"}'
    error = problem_error(answer(404, body=problem))
    assert isinstance(error, NotFound)
    assert (error.title, error.detail) == ("Not Found", "event x not found")
    assert error.request_id == "r-1"
    assert error.errors == []

    html = problem_error(answer(502, body=b"<html>Bad gateway</html>"))
    assert isinstance(html, ServerError)
    assert html.detail == "<html>Bad gateway</html>"
    odd = problem_error(answer(418, body=b"[]"))
    assert type(odd) is ProblemError
    assert odd.status == 418


def test_query_parameters_are_spelt_as_the_api_reads_them() -> None:
    start = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
    params = query({"action": ["LOGIN", "LOGOUT"], "include_access": True, "start": start,
                    "limit": None, "q": "error"})  # fmt: skip
    assert params == [
        ("action", "LOGIN"), ("action", "LOGOUT"), ("include_access", "true"),
        ("start", "2026-11-30T09:15:00+00:00"), ("q", "error"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="timezone"):
        query({"end": datetime(2026, 1, 1)})


def test_a_proof_not_sealed_yet_is_its_own_conflict_with_its_retry_after() -> None:
    body = b'{"type": "https://auditline.dev/problems/not-sealed", "title": "Not sealed yet"}'
    error = problem_error(answer(409, "1", body))
    assert isinstance(error, NotSealed)
    assert isinstance(error, Conflict)
    assert error.retry_after == 1
    other = problem_error(
        answer(409, None, b'{"type": "https://auditline.dev/problems/legal-hold"}')
    )
    assert type(other) is Conflict


def stream_protocol(base: str, **filters: object) -> _Protocol:
    http = httpx.Client(base_url=base, headers={"Authorization": "Bearer t"})
    return _Protocol(http, "acme", dict(filters), None, Retries(attempts=3, backoff=0.01))


def test_a_stream_connects_where_the_client_points_and_resumes_after_its_cursor() -> None:
    protocol = stream_protocol("https://audit.test/behind/a/proxy", action=["LOGIN", "LOGOUT"])
    assert protocol.url() == (
        "wss://audit.test/behind/a/proxy/api/v1/logs/stream"
        "?action=LOGIN&action=LOGOUT&tenant_id=acme"
    )
    assert protocol.read('{"type": "ready", "cursor": "41"}') is None
    item = protocol.read('{"type": "event", "cursor": "42", "data": {"seq": 42}}')
    assert item is not None
    assert item.cursor == 42
    assert protocol.read('{"type": "event", "cursor": "42", "data": {"seq": 42}}') is None
    assert protocol.read('{"type": "hello-from-the-future"}') is None
    assert protocol.url().endswith("&since=42")
    assert stream_protocol("http://audit.test").url().startswith("ws://audit.test/api/v1/")


def test_a_stream_stops_at_a_refusal_and_after_its_retries() -> None:
    protocol = stream_protocol("http://audit.test")
    protocol.read('{"type": "error", "code": 4403, "detail": "a logs:write key"}')
    with pytest.raises(Forbidden, match="a logs:write key"):
        protocol.after_close(4403, "forbidden", RuntimeError())
    assert protocol.after_close(4408, "lagged", RuntimeError()) == 0
    assert 0 <= protocol.after_close(None, "broke", RuntimeError()) <= 0.02
    with pytest.raises(NetworkError, match="3 connections in a row"):
        protocol.after_close(1011, "internal", RuntimeError())
    with pytest.raises(NotFound):
        protocol.after_refusal(404, RuntimeError())
