"""The process's fan-out hub: one announcement source, one read per announced range.

Why it is shaped this way:

* **References, not events.** A commit announces ``(tenant, first seq, last seq)``
  (``storage.stream``; heard through ``stream.announce``, LISTEN by default); the hub
  reads those rows itself, once per process, however many subscribers want them, and
  only for tenants that have a subscriber here.
* **seq makes it exact.** A tenant's ``seq`` is gap-free and in commit order, and the hub
  keeps, per tenant, the last ``seq`` it dispatched (``upto``). Each read takes everything
  in ``(upto, announced]``, so a notification that went missing (the listener reconnected)
  is made up by the next read, and nothing is dispatched twice.
* **Subscribe, then replay.** A subscription records ``after``, the ``upto`` at the moment
  it joined (under the feed's lock, so no read is half dispatched): it receives every live
  event with a greater ``seq``, and a resuming client replays the stored ones up to
  ``after`` (``stream.session``). The seam has neither a gap nor a duplicate.
* **Bounded buffers.** Each subscription has a bounded queue; one that overflows is
  marked lagged and receives nothing more (its connection tells the client where to
  resume, and closes). A slow client never makes the hub, or memory, wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from auditline.config import StreamSettings
from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
from auditline.search.evaluate import matches, text_terms
from auditline.search.model import SearchQuery
from auditline.search.query import Text
from auditline.storage.database import Connection, tenant_transaction
from auditline.storage.stream import Announcement, events_after, last_seq
from auditline.stream.announce import AnnouncementSource

log = logging.getLogger(__name__)

Encode = Callable[[StoredEvent], str]


class TooManyStreams(Exception):
    """The tenant already has as many streams in this process as allowed."""


class Delivery:
    """One new event as every subscriber of this process receives it: the message is
    encoded once, by the first connection that sends it, and shared by the others."""

    __slots__ = ("_text", "event")

    def __init__(self, event: StoredEvent) -> None:
        self.event = event
        self._text: str | None = None

    @property
    def seq(self) -> int:
        return self.event.seq

    def text(self, encode: Encode) -> str:
        if self._text is None:
            self._text = encode(self.event)
        return self._text


class Subscription:
    """One connection's view of the hub: its tenant, its query, its bounded queue."""

    def __init__(self, tenant: TenantId, query: SearchQuery, capacity: int) -> None:
        self.tenant = tenant
        self.query = query
        self.terms = text_terms(query)
        self.after = -1
        """Live delivery starts after this seq; set when the subscription joins."""
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=capacity)
        self.lagged = asyncio.Event()
        """Set when the queue overflowed: nothing more is queued."""

    def offer(self, delivery: Delivery, hits: dict[Text, bool]) -> None:
        if self.lagged.is_set() or delivery.seq <= self.after:
            return
        if not matches(delivery.event.event, self.query, hits.__getitem__):
            return
        try:
            self.queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self.lagged.set()


@dataclass(eq=False)
class _Feed:
    """What the hub keeps per tenant with at least one subscriber in this process."""

    tenant: TenantId
    upto: int = -1
    announced: int = -1
    subs: set[Subscription] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    pump: asyncio.Task[None] | None = None


class StreamHub:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        source: AnnouncementSource,
        settings: StreamSettings,
    ) -> None:
        self._pool = pool
        self._source = source
        self.settings = settings
        self._feeds: dict[str, _Feed] = {}
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.reads = 0
        """Row reads made (for tests and the benchmark: one per range, not per subscriber)."""

    async def start(self) -> None:
        """Start listening; returns once LISTEN is in place (subscriptions need it)."""
        self._task = asyncio.create_task(
            self._source.run(self._announced, self._connected), name="stream-announcements"
        )
        waiter = asyncio.create_task(self._listening.wait())
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            waiter.cancel()
            self._task.result()  # raises what stopped it

    async def close(self) -> None:
        tasks = [self._task, *self._background] + [f.pump for f in self._feeds.values()]
        for task in tasks:
            if task is not None:
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._feeds.clear()

    async def subscribe(self, tenant: TenantId, query: SearchQuery) -> Subscription:
        """Join *tenant*'s feed; raises :class:`TooManyStreams` past the per-tenant cap.

        Returns once the subscription's ``after`` is set: every event committed with a
        greater ``seq`` will be offered to it, in ``seq`` order.
        """
        sub = Subscription(tenant, query, self.settings.buffer_events)
        while True:
            feed = self._feeds.get(tenant)
            if feed is None:
                feed = self._feeds[tenant] = _Feed(tenant)
                try:
                    async with tenant_transaction(self._pool, tenant) as conn:
                        feed.upto = await last_seq(conn, tenant)
                except BaseException:
                    del self._feeds[tenant]
                    raise
                finally:
                    feed.ready.set()
                feed.announced = max(feed.announced, feed.upto)
            else:
                await feed.ready.wait()
            async with feed.lock:
                if self._feeds.get(tenant) is not feed:
                    continue  # emptied and dropped meanwhile: join (or make) the new one
                if len(feed.subs) >= self.settings.max_streams_per_tenant:
                    raise TooManyStreams(tenant)
                sub.after = feed.upto
                feed.subs.add(sub)
                break
        self._kick(feed)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        feed = self._feeds.get(sub.tenant)
        if feed is None:
            return
        feed.subs.discard(sub)
        if not feed.subs and not feed.lock.locked():
            del self._feeds[sub.tenant]
            if feed.pump is not None:
                feed.pump.cancel()

    # -- announcements

    def _connected(self) -> None:
        self._listening.set()
        for feed in list(self._feeds.values()):  # what was announced while nobody listened
            self._catch_up(feed)

    def _announced(self, ann: Announcement) -> None:
        feed = self._feeds.get(ann.tenant)
        if feed is None:  # nobody here watches this tenant: nothing to read
            return
        if ann.last > feed.announced:
            feed.announced = ann.last
            self._kick(feed)

    def _catch_up(self, feed: _Feed) -> None:
        async def read_head() -> None:
            try:
                async with tenant_transaction(self._pool, feed.tenant) as conn:
                    head = await last_seq(conn, feed.tenant)
            except Exception:  # the next announcement for this tenant catches up instead
                log.exception("stream catch-up for %s failed", feed.tenant)
                return
            if head > feed.announced:
                feed.announced = head
                self._kick(feed)

        task = asyncio.get_running_loop().create_task(read_head())
        self._background.add(task)  # held until done (the loop keeps only weak references)
        task.add_done_callback(self._background.discard)

    def _kick(self, feed: _Feed) -> None:
        if feed.announced > feed.upto and (feed.pump is None or feed.pump.done()):
            feed.pump = asyncio.create_task(self._pump(feed), name=f"stream-{feed.tenant}")

    async def _pump(self, feed: _Feed) -> None:
        """Read and dispatch *feed*'s announced rows, one bounded read at a time."""
        delay = 0.1
        while feed.announced > feed.upto and feed.subs:
            try:
                async with feed.lock:
                    terms = sorted({t for s in feed.subs for t in s.terms}, key=repr)
                    async with tenant_transaction(self._pool, feed.tenant) as conn:
                        rows = await events_after(
                            conn, feed.tenant, feed.upto, feed.announced, terms,
                            limit=self.settings.read_batch,
                        )  # fmt: skip
                    self.reads += 1
                    for row in rows:
                        hits = dict(zip(terms, row.hits, strict=True))
                        delivery = Delivery(row.event)
                        for sub in feed.subs:
                            sub.offer(delivery, hits)
                        feed.upto = row.event.seq
                    if not rows:  # removed since (retention): nothing left to read there
                        feed.upto = feed.announced
                delay = 0.1
            except Exception:  # the database is away or busy: the announced rows stay due
                log.exception("stream read for %s failed; retrying", feed.tenant)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if not feed.subs and self._feeds.get(feed.tenant) is feed:
            del self._feeds[feed.tenant]
