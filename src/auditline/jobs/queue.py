"""The queue interface: Amazon SQS's semantics, whichever backend carries the messages.

A message is *sent* (in the sender's transaction: a queue row, or an outbox row relayed
to SQS), *received* by one worker at a time for a visibility timeout, *deleted* when its
task succeeded, made visible again after a backoff when it failed, and *dead-lettered*
once it has been received ``max_receives`` times without success. Delivery is at least
once: a worker that dies loses nothing (the message reappears when its visibility
expires), and a task may therefore run again, so every task is idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol
from uuid import UUID

from auditline.storage.database import Connection


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery of a task. *handle* is the backend's receipt for this delivery only."""

    job_id: UUID
    kind: str
    tenant: str | None  # None: a platform job
    payload: dict[str, Any]
    receive_count: int
    handle: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Batch:
    """What one receive returned: messages to run, and messages that went dead instead
    (received ``max_receives`` times already: their job is to be marked failed)."""

    messages: list[Message]
    dead: list[Message] = field(default_factory=list)


PRUNE_BATCH: Final = 1000
"""Rows one pruning statement deletes: short transactions, however much is due."""


class Queue(Protocol):
    """A queue backend. ``transactional`` backends settle a message (delete, retry,
    dead-letter) on the connection of the transaction that records the job's outcome, so
    the two commit together; the others settle after that transaction committed."""

    name: str
    transactional: bool

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(
        self,
        conn: Connection,
        *,
        job_id: UUID,
        kind: str,
        tenant: str | None,
        payload: Mapping[str, Any],
    ) -> None:
        """Send in the caller's transaction: nothing is sent if it rolls back."""  # fmt: skip

    async def receive(self, max_messages: int, wait_seconds: float) -> Batch:
        """Up to *max_messages*, waiting up to *wait_seconds* for the first (woken early
        by new work)."""

    def wake(self) -> None:
        """End a waiting :meth:`receive` now (shutdown)."""

    async def delete(self, message: Message, conn: Connection | None) -> None: ...

    async def retry_later(self, message: Message, delay: float, conn: Connection | None) -> None:
        """Make the message visible again after *delay* seconds (a failed attempt)."""

    async def extend(self, message: Message, seconds: float) -> None:
        """Hide a message still being worked on for *seconds* more (heartbeat)."""

    async def dead_letter(self, message: Message, error: str, conn: Connection | None) -> None:
        """Move the message to the dead-letter queue (the last attempt failed)."""

    async def depth(self) -> int:
        """Messages not yet deleted nor dead: waiting, in flight or backing off (SQS: the
        approximate counts; the outbox not included)."""

    async def dead_letters(self, limit: int = 10) -> list[Message]:
        """A look at the dead-letter queue, for operators and tests; changes nothing
        that matters (SQS: the peeked messages stay there)."""

    async def prune_dead_letters(self, dead_before: datetime) -> int:
        """Delete what was dead-lettered before *dead_before*; how many messages went
        (SQS: none, the dead-letter queue drops them itself after its message retention
        period, four days unless configured, at most fourteen)."""

    async def relay(self) -> None:
        """Run until cancelled: whatever the backend needs in the background of a worker
        (the SQS outbox relay). Returns at once when nothing is needed."""


def backoff(receive_count: int, base: float, cap: float) -> float:
    """Seconds before a failed task is tried again: *base* doubling with each receive."""
    return float(min(cap, base * 2 ** max(0, receive_count - 1)))
