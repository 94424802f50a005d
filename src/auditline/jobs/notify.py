"""LISTEN/NOTIFY wake-ups: an idle worker (or relay) waits on an event that a notification
on its channel sets, so new work starts without a polling delay.

NOTIFY is delivered only after the sender's commit, which is exactly when the work becomes
visible. The listener keeps one connection of its own (LISTEN needs a session) and
reconnects after a failure; while it is down, the waiters' poll interval still finds the
work, only later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)


class Listener:
    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self.event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"listen {self._channel}")
        # Wait (briefly) until LISTEN is in place, so work sent right after start wakes us.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._ready.set()
                    self.event.set()  # anything sent while we were not listening
                    delay = 0.5
                    async for _ in conn.notifies():
                        self.event.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("LISTEN %s lost; reconnecting in %.1fs", self._channel, delay)
                self.event.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)

    async def wait(self, seconds: float) -> None:
        """Until a notification arrives (or arrived since the last wait), or *seconds* pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)
        self.event.clear()
