"""LISTEN/NOTIFY wake-ups: an idle worker hears of new work when, and only when, the
transaction that submitted it commits."""

from __future__ import annotations

import asyncio

import pytest

from auditline.jobs.notify import Listener
from auditline.services import Services
from auditline.storage.queue import QUEUE_CHANNEL


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_listener_wakes_on_the_commit_of_a_submit_not_before(
    services: Services, database_url: str
) -> None:
    listener = Listener(database_url, QUEUE_CHANNEL)
    await listener.start()
    try:
        await listener.wait(0)  # forget the wake-up of connecting
        async with services.pool.connection() as conn, conn.transaction():
            await services.jobs.submit("test.noop", {}, tenant=None, conn=conn)
            await asyncio.sleep(0.5)  # a notification would arrive meanwhile: none is sent
            assert not listener.event.is_set()
        await asyncio.wait_for(listener.event.wait(), timeout=30)
        got = await services.jobs.queue.receive(1, 0)
        assert [m.kind for m in got.messages] == ["test.noop"]
    finally:
        await listener.close()
