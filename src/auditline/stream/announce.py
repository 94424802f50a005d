"""Where a process learns that a tenant's log grew: the pluggable half of the fan-out.

The hub needs only ``(tenant, first seq, last seq)`` references, in commit order per
tenant, and a signal when it may have missed some (it then reads each watched tenant's head
and catches up by ``seq``, so a lost reference delays events and never loses one). The
default source is PostgreSQL's LISTEN on one connection per process; a larger deployment
can plug in another source with the same contract (a broker topic fed from the same
trigger's references, for instance) without touching the hub or the API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import psycopg

from auditline.storage.stream import CHANNEL, Announcement, parse_announcement

log = logging.getLogger(__name__)


class AnnouncementSource(Protocol):
    async def run(
        self,
        announced: Callable[[Announcement], None],
        connected: Callable[[], None],
    ) -> None:
        """Call *announced* for every committed append, for ever; call *connected* each
        time delivery (re)starts, after which references may have been missed."""
        ...


class PostgresAnnouncements:
    """``LISTEN auditline_events`` on one dedicated connection, reconnecting with backoff."""

    def __init__(self, url: str) -> None:
        self._url = url

    async def run(
        self,
        announced: Callable[[Announcement], None],
        connected: Callable[[], None],
    ) -> None:
        delay = 0.2
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.2
                    connected()
                    async for note in conn.notifies():
                        ann = parse_announcement(note.payload)
                        if ann is not None:
                            announced(ann)
            except psycopg.OperationalError as exc:
                log.warning("stream listener lost its connection: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
