"""The SDK's live stream against a real ``auditline serve``: every event once and in order
across a lagged close and a broken connection, typed refusals, clean close."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from auditline_client import (
    AsyncClient,
    BadRequest,
    Client,
    NotFound,
    Stream,
    StreamEvent,
    Unauthorized,
)
from tests.clients.conftest import STREAM_BUFFER, unique
from tests.clients.faults import FaultyProxy
from tests.conftest import TokenFactory
from tests.e2e.test_serve_process import Server

pytestmark = pytest.mark.slow


def take(events: Iterator[StreamEvent], count: int) -> list[StreamEvent]:
    return [next(events) for _ in range(count)]


def test_every_event_once_in_order_across_a_lag_and_a_broken_connection(
    server: Server, make_token: TokenFactory, proxy: FaultyProxy, acme: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="auditline_client")
    request_id = unique()
    start = acme.create(action="LOGIN", request_id=request_id)
    assert "seq" in start
    written: list[str] = []
    with Client(proxy.url, make_token("auditor", "acme")) as auditor:
        stream = auditor.stream(since=start["seq"], request_id=request_id)
        with stream:
            # Before the stream connects: replayed after `since`.
            written += acme.create_many([{"action": "UPDATE", "request_id": request_id}] * 3)["ids"]
            got = take(stream, 3)
            # More at once than the server buffers for a stream: it lags (4408) and resumes.
            bulk = [{"action": "DELETE", "request_id": request_id}] * (STREAM_BUFFER * 4)
            written += acme.create_many(bulk)["ids"]
            got += take(stream, STREAM_BUFFER * 2)
            proxy.cut()  # the network fails under the open stream: it resumes as well
            written += acme.create_many([{"action": "VIEW", "request_id": request_id}] * 5)["ids"]
            got += take(stream, len(written) - len(got))
            assert stream.cursor == got[-1].cursor
        assert next(stream, None) is None  # closed: the iteration is over
    assert [item.event["id"] for item in got] == written  # nothing lost, repeated, reordered
    assert [item.cursor for item in got] == [item.event["seq"] for item in got]
    assert all(item.event["request_id"] == request_id for item in got)
    resumes = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert any("4408" in message for message in resumes), resumes
    assert any("broke" in message for message in resumes), resumes
    assert proxy.cuts == 1


def test_a_stream_closed_from_another_thread_ends_its_iteration(
    server: Server, make_token: TokenFactory, acme: Client
) -> None:
    request_id = unique()
    start = acme.create(action="LOGIN", request_id=request_id)
    acme.create(action="LOGOUT", request_id=request_id)
    with Client(server.base, make_token("auditor", "acme")) as auditor:
        stream = auditor.stream(since=start["seq"], request_id=request_id)
        first = next(stream)
        closer = threading.Timer(0.5, stream.close)  # while the loop waits for more
        closer.start()
        rest = list(stream)
        closer.join()
    assert first.event["action"] == "LOGOUT"
    assert rest == []


@pytest.mark.parametrize(
    ("tenant_filters", "error", "close_code"),
    [
        ({"tenant_id": "globex"}, NotFound, 4404),
        ({"min_severity": "LOUD"}, BadRequest, 4400),
        ({"q": "(unbalanced"}, BadRequest, 4400),
    ],
)
def test_a_stream_the_server_refuses_raises_the_typed_error(
    server: Server, make_token: TokenFactory, tenant_filters: dict[str, str],
    error: type[Exception], close_code: int,
) -> None:  # fmt: skip
    with Client(server.base, make_token("auditor", "acme")) as auditor:
        stream = auditor.stream(**tenant_filters)  # type: ignore[arg-type]
        with stream, pytest.raises(error) as caught:
            next(stream)
    assert getattr(caught.value, "problem", {}).get("close_code") == close_code
    assert getattr(caught.value, "detail", "")


def test_a_bad_token_is_unauthorized_not_retried(server: Server) -> None:
    nobody = Client(server.base, "not-a-token")
    with nobody, nobody.stream() as stream, pytest.raises(Unauthorized):
        next(stream)


async def test_the_async_stream_resumes_after_a_lag_and_closes_cleanly(
    server: Server, make_token: TokenFactory, acme: Client
) -> None:
    request_id = unique()
    start = acme.create(action="LOGIN", request_id=request_id)
    written = acme.create_many([{"action": "UPDATE", "request_id": request_id}] * 2)["ids"]
    got: list[StreamEvent] = []
    async with AsyncClient(server.base, make_token("auditor", "acme")) as auditor:
        async with auditor.stream(since=start["seq"], request_id=request_id) as stream:
            async for item in stream:
                got.append(item)
                if len(got) == 2:  # live now: a bulk larger than the buffer makes it lag
                    bulk = [{"action": "DELETE", "request_id": request_id}] * (STREAM_BUFFER * 3)
                    written += acme.create_many(bulk)["ids"]
                if len(got) == len(written):
                    break
        assert [item async for item in stream] == []  # closed by the async with
    assert [item.event["id"] for item in got] == written


def test_stream_is_lazy_and_typed(server: Server, make_token: TokenFactory) -> None:
    with Client("http://127.0.0.1:9", make_token("auditor", "acme")) as offline:
        stream = offline.stream(user_id="ann")
        assert isinstance(stream, Stream)
        assert stream.cursor is None  # nothing was sent: a stream connects when iterated
        stream.close()
        assert list(stream) == []
