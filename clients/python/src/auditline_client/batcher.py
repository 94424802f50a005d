"""A background batcher for applications that log from their request handlers.

``add`` encodes the event (giving it its id and timestamp), puts it in a bounded buffer and
returns; a thread sends the buffer in bulk requests of at most ``max_batch`` events (and
``max_batch_bytes``) whenever that many are waiting, or ``flush_interval`` seconds after the
oldest waiting event was added, whichever comes first. ``close`` (also run at interpreter
exit and by ``with``) sends everything accepted before it returns.

Nothing accepted is lost silently: every event ends up sent, or handed to ``on_error`` with
the exception that stopped it (after the client's retries), and is counted either way. An
event the buffer has no room for is refused by ``add`` (returns False) and counted as
dropped: at once with ``when_full="drop"``, after waiting at most ``block_timeout`` seconds
for room with ``when_full="block"``. So ``add`` never holds up its caller for longer than
``block_timeout``, and it is as cheap from asynchronous code as from threads.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Unpack

from auditline_client import _calls
from auditline_client._http import Closing, encode
from auditline_client.client import Client
from auditline_client.errors import ValidationFailed
from auditline_client.types import NewEvent

log = logging.getLogger("auditline_client.batcher")

ErrorHook = Callable[[Exception, list[dict[str, Any]]], None]
"""Called, on the batcher's thread, with the error and the events it stopped (as sent)."""

BULK_MAX_EVENTS = 1000  # the server's default limit per bulk request
BULK_MAX_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class BatcherStats:
    accepted: int
    """Events ``add`` took."""
    sent: int
    """Events the server acknowledged (stored, or already stored: ``duplicates``)."""
    duplicates: int
    failed: int
    """Events handed to ``on_error``."""
    dropped: int
    """Events ``add`` refused: no room in the buffer, or the batcher was closed."""
    buffered: int
    batches: int


class Batcher(Closing):
    """Buffers events and sends them in bulk from a background thread.

    It sends through *client* (with its retries and timeouts) and closes the client when it
    is closed itself if ``close_client``. At interpreter exit it is closed with
    ``exit_timeout``.
    """

    def __init__(
        self,
        client: Client,
        *,
        tenant_id: str | None = None,
        max_batch: int = 500,
        max_batch_bytes: int = 4 * 1024 * 1024,
        flush_interval: float = 1.0,
        max_buffer: int = 10_000,
        max_buffer_bytes: int = 32 * 1024 * 1024,
        when_full: Literal["drop", "block"] = "drop",
        block_timeout: float = 0.05,
        on_error: ErrorHook | None = None,
        close_client: bool = False,
        exit_timeout: float = 30.0,
    ) -> None:
        if not 1 <= max_batch <= BULK_MAX_EVENTS:
            raise ValueError(f"max_batch must be 1..{BULK_MAX_EVENTS}")
        if not 0 < max_batch_bytes <= BULK_MAX_BYTES:
            raise ValueError(f"max_batch_bytes must be 1..{BULK_MAX_BYTES}")
        self._client, self._tenant, self._close_client = client, tenant_id, close_client
        self._max_batch, self._max_batch_bytes = max_batch, max_batch_bytes
        self._interval = flush_interval
        self._max_buffer, self._max_buffer_bytes = max_buffer, max_buffer_bytes
        self._when_full, self._block_timeout = when_full, block_timeout
        self._on_error = on_error
        self._cond = threading.Condition()
        self._buffer: deque[tuple[float, bytes]] = deque()  # (monotonic time added, event)
        self._buffer_bytes = 0
        self._closed = False
        self._flush_upto = 0  # events numbered up to this one are wanted out now
        self._accepted = self._done = 0  # events are done (sent or failed) in order
        self._sent = self._duplicates = self._failed = self._dropped = self._batches = 0
        self._thread = threading.Thread(target=self._run, name="auditline-batcher", daemon=True)
        self._thread.start()
        # At interpreter exit, send what is buffered, but do not hold the exit up for ever
        # behind a server that is away.
        atexit.register(self.close, exit_timeout)

    # --- the application's side

    def add(self, **event: Unpack[NewEvent]) -> bool:
        """Buffer one event; False when it was dropped (no room, or closed).

        Raises ``TypeError``/``ValueError`` at once for an event that is not JSON (or has a
        naive datetime): such an event could never be sent.
        """
        item = encode(_calls.prepared(event, stamp=True))
        with self._cond:
            if not self._room_for(len(item)) and self._when_full == "block" and not self._closed:
                self._cond.wait_for(
                    lambda: self._closed or self._room_for(len(item)), self._block_timeout
                )
            if self._closed or not self._room_for(len(item)):
                self._dropped += 1
                return False
            self._buffer.append((time.monotonic(), item))
            self._buffer_bytes += len(item)
            self._accepted += 1
            if len(self._buffer) == 1 or len(self._buffer) >= self._max_batch:
                self._cond.notify_all()
            return True

    def _room_for(self, size: int) -> bool:
        return (
            len(self._buffer) < self._max_buffer
            and self._buffer_bytes + size <= self._max_buffer_bytes
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Send every event accepted so far now; True when they are all done (sent or
        handed to ``on_error``) within *timeout* seconds."""
        with self._cond:
            upto = self._accepted
            self._flush_upto = max(self._flush_upto, upto)
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= upto, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new events, send every buffered one, stop the thread. True when all were
        done within *timeout* seconds (None: wait as long as it takes). Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        finished = not self._thread.is_alive()
        if not finished:
            log.warning("%d audit events still buffered after %s s", self.stats.buffered, timeout)
        else:
            atexit.unregister(self.close)
            if self._close_client:
                self._client.close()
        return finished

    @property
    def stats(self) -> BatcherStats:
        with self._cond:
            return BatcherStats(
                accepted=self._accepted, sent=self._sent, duplicates=self._duplicates,
                failed=self._failed, dropped=self._dropped, buffered=len(self._buffer),
                batches=self._batches,
            )  # fmt: skip

    # --- the thread's side

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._send(batch)

    def _next_batch(self) -> list[bytes] | None:
        """Wait until a batch is due and take it; None when closed and empty."""
        with self._cond:
            while not self._due():
                if self._buffer:
                    self._cond.wait(self._buffer[0][0] + self._interval - time.monotonic())
                else:
                    self._cond.wait()
            if not self._buffer:
                return None
            batch: list[bytes] = []
            size = len(b'{"events":[]}')
            while self._buffer and len(batch) < self._max_batch:
                item = self._buffer[0][1]
                if batch and size + len(item) + 1 > self._max_batch_bytes:
                    break  # the next request takes it
                self._buffer.popleft()
                self._buffer_bytes -= len(item)
                batch.append(item)
                size += len(item) + 1  # and a comma
            self._cond.notify_all()  # room for blocked adders
            return batch

    def _due(self) -> bool:
        if not self._buffer:
            return self._closed
        return (
            self._closed
            or len(self._buffer) >= self._max_batch
            or self._done < self._flush_upto  # flush() waits for some of these
            or time.monotonic() >= self._buffer[0][0] + self._interval
        )

    def _send(self, batch: list[bytes]) -> None:
        sent = duplicates = 0
        failures: list[tuple[Exception, list[bytes]]] = []
        try:
            result = self._client.send(_calls.create_encoded(batch, self._tenant))
            sent, duplicates = len(batch), result["duplicates"]
        except ValidationFailed as exc:
            # A bulk request is all or nothing: one bad event would sink the others. Hand
            # the ones the server named to on_error and send the rest once more.
            bad = {e["index"] for e in exc.errors if "index" in e}
            good = [item for i, item in enumerate(batch) if i not in bad]
            if not bad or len(good) == len(batch):
                failures.append((exc, batch))
            else:
                failures.append((exc, [item for i, item in enumerate(batch) if i in bad]))
                if good:
                    try:
                        result = self._client.send(_calls.create_encoded(good, self._tenant))
                        sent, duplicates = len(good), result["duplicates"]
                    except Exception as again:  # every failure goes to the hook
                        failures.append((again, good))
        except Exception as exc:  # every failure goes to the hook
            failures.append((exc, batch))
        for error, events in failures:
            self._report(error, events)
        with self._cond:
            self._sent += sent
            self._duplicates += duplicates
            self._failed += sum(len(events) for _, events in failures)
            self._done += len(batch)
            self._batches += 1
            self._cond.notify_all()

    def _report(self, error: Exception, events: list[bytes]) -> None:
        log.warning("%d audit events not stored: %r", len(events), error)
        if self._on_error is None:
            return
        try:
            self._on_error(error, [json.loads(e) for e in events])
        except Exception:
            log.exception("the batcher's on_error hook failed")
