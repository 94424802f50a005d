"""The SDK's background batcher against a real ``auditline serve``."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from auditline_client import NO_RETRIES, Batcher, Client, NotFound
from tests.clients.conftest import unique
from tests.clients.faults import FaultyProxy
from tests.conftest import TokenFactory
from tests.e2e.test_serve_process import Server

pytestmark = pytest.mark.slow


def stored_ids(reader: Client, resource_id: str) -> list[str]:
    return [e["id"] for e in reader.iter_events(resource_id=resource_id, page_size=1000)]


def batcher_for(server: Server, token: str, **options: Any) -> Batcher:
    return Batcher(Client(server.base, token), close_client=True, **options)


class Failures(list[tuple[Exception, list[dict[str, Any]]]]):
    """An ``on_error`` hook that keeps what it is given."""

    def __call__(self, error: Exception, events: list[dict[str, Any]]) -> None:
        self.append((error, events))


def wait_until(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_close_sends_everything_accepted(
    server: Server, make_token: TokenFactory, acme: Client
) -> None:
    resource = unique()
    writer = Client(server.base, make_token("user", "acme", sub="batch-writer"))
    # A long interval: nothing leaves by time, only full batches and then close().
    batcher = Batcher(writer, max_batch=400, flush_interval=3600, close_client=True)
    for i in range(2345):
        assert batcher.add(action="CREATE", resource_id=resource, user_id="batch-writer",
                           metadata={"n": i})  # fmt: skip
    assert batcher.close(timeout=120)

    stats = batcher.stats
    assert (stats.accepted, stats.sent, stats.failed, stats.dropped) == (2345, 2345, 0, 0)
    assert stats.batches == 6  # five full batches of 400 and the 345 close() sent
    ids = stored_ids(acme, resource)
    assert len(ids) == len(set(ids)) == 2345
    assert not batcher.add(action="CREATE")  # closed: refused and counted
    assert batcher.stats.dropped == 1


def test_a_batch_leaves_after_the_interval_and_keeps_its_times(
    server: Server, make_token: TokenFactory, acme: Client
) -> None:
    resource = unique()
    with batcher_for(server, make_token("admin", "acme"), flush_interval=0.2) as batcher:
        for _ in range(3):
            batcher.add(action="VIEW", resource_id=resource)
        wait_until(lambda: batcher.stats.sent == 3)  # neither full nor closed: the timer
        assert batcher.stats.batches == 1
    events = list(acme.iter_events(resource_id=resource))
    assert len(events) == 3
    for event in events:  # stamped when added, not when the server received the batch
        taken, received = (datetime.fromisoformat(event[k]) for k in ("timestamp", "received_at"))
        assert received - taken >= timedelta(seconds=0.15)


def test_flush_waits_for_everything_added_before_it(
    server: Server, make_token: TokenFactory, acme: Client
) -> None:
    resource = unique()
    with batcher_for(server, make_token("admin", "acme"), flush_interval=3600) as batcher:
        for _ in range(5):
            batcher.add(action="VIEW", resource_id=resource)
        assert batcher.flush(timeout=30)
        assert len(stored_ids(acme, resource)) == 5


def test_a_bad_event_goes_to_the_hook_and_the_rest_are_stored(
    server: Server, make_token: TokenFactory, acme: Client
) -> None:
    resource = unique()
    failures = Failures()
    token = make_token("admin", "acme")
    with batcher_for(server, token, flush_interval=3600, on_error=failures) as batcher:
        for i in range(10):
            batcher.add(action="VIEW" if i != 4 else "lower-case", resource_id=resource)
    assert (batcher.stats.sent, batcher.stats.failed) == (9, 1)
    [(error, events)] = failures
    assert getattr(error, "pointers", None) == ["/events/4/action"]
    assert [e["action"] for e in events] == ["lower-case"]
    assert len(stored_ids(acme, resource)) == 9


def test_events_the_server_refuses_go_to_the_hook_counted(
    server: Server, make_token: TokenFactory
) -> None:
    failures = Failures()
    acme_only = Client(server.base, make_token("user", "acme"), retries=NO_RETRIES)
    with Batcher(acme_only, tenant_id="globex", flush_interval=3600, close_client=True,
                 on_error=failures) as batcher:  # fmt: skip
        for _ in range(4):
            batcher.add(action="LOGIN")
    assert (batcher.stats.sent, batcher.stats.failed) == (0, 4)
    [(error, events)] = failures
    assert isinstance(error, NotFound)
    assert len(events) == 4
    assert all(e["id"] and e["timestamp"] for e in events)


def test_a_full_buffer_drops_new_events_and_counts_them(
    make_token: TokenFactory, proxy: FaultyProxy, acme: Client
) -> None:
    resource = unique()
    proxy.hold()  # the server is unreachable for now: the first batch waits in flight
    held = Client(proxy.url, make_token("admin", "acme"), timeout=60)
    batcher = Batcher(held, max_batch=5, flush_interval=0.01, max_buffer=10, close_client=True)
    batcher.add(action="VIEW", resource_id=resource)
    wait_until(lambda: batcher.stats.buffered == 0)  # taken, and being sent
    accepted = [batcher.add(action="VIEW", resource_id=resource) for _ in range(50)]
    assert accepted == [True] * 10 + [False] * 40
    assert batcher.stats.dropped == 40

    proxy.release()
    assert batcher.close(timeout=60)
    stats = batcher.stats
    assert (stats.accepted, stats.sent, stats.failed, stats.dropped) == (11, 11, 0, 40)
    assert len(stored_ids(acme, resource)) == 11


def test_a_full_buffer_blocks_add_for_at_most_the_bound(
    make_token: TokenFactory, proxy: FaultyProxy
) -> None:
    proxy.hold()
    batcher = Batcher(Client(proxy.url, make_token("admin", "acme"), timeout=60),
                      max_batch=1, flush_interval=0.01, max_buffer=1, when_full="block",
                      block_timeout=2.0, close_client=True)  # fmt: skip
    batcher.add(action="VIEW")
    wait_until(lambda: batcher.stats.buffered == 0)  # taken, and held in flight
    assert batcher.add(action="VIEW")  # the one place in the buffer
    assert not batcher.add(action="VIEW")  # waited for room, none came: dropped

    # Room that comes while add waits is taken: the server comes back during the wait.
    threading.Timer(0.1, proxy.release).start()
    assert batcher.add(action="VIEW")
    assert batcher.close(timeout=60)
    assert (batcher.stats.sent, batcher.stats.dropped) == (3, 1)
