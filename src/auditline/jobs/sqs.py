"""The Amazon SQS queue backend: a standard queue and a dead-letter queue behind a
redrive policy, reached through aiobotocore.

Sending cannot join a PostgreSQL transaction, so it goes through a transactional outbox:
:meth:`SqsQueue.send` writes an ``job_outbox`` row in the sender's transaction, and every
worker runs :meth:`SqsQueue.relay`, which sends committed rows to SQS and deletes them in
one database transaction (woken by NOTIFY). A crash between commit and send loses nothing
(the row is still there); a crash between send and delete sends the message twice, which
the tasks tolerate (they are idempotent, and a finished job's duplicate is just deleted).

Dead-lettering is SQS's own: the redrive policy's ``maxReceiveCount`` is ``max_receives +
1``. A task is attempted ``max_receives`` times; the delivery after that (a worker died on
the last attempt, or the last attempt failed and released it) only marks the job failed
and releases the message, and SQS moves it to the dead-letter queue on the next receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from aiobotocore.session import get_session
from psycopg_pool import AsyncConnectionPool

from auditline.config import SqsSettings
from auditline.jobs.notify import Listener
from auditline.jobs.queue import Batch, Message
from auditline.storage import queue as store
from auditline.storage.database import Connection
from auditline.storage.queue import worker_transaction

log = logging.getLogger(__name__)

_MAX_VISIBILITY = 43_200  # SQS's limit, 12 hours


def _seconds(value: float) -> int:
    return max(0, min(_MAX_VISIBILITY, math.ceil(value)))


class SqsQueue:
    name = "sqs"
    transactional = False

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        conninfo: str,
        settings: SqsSettings,
        *,
        visibility_seconds: float,
        max_receives: int,
        poll_seconds: float,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._visibility = _seconds(visibility_seconds)
        self._max_receives = max_receives
        self._poll = poll_seconds
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._url = ""
        self._dlq_url = ""
        self._outbox = Listener(conninfo, store.OUTBOX_CHANNEL)
        self._listening = False

    async def start(self) -> None:
        if self._client is not None:
            return
        s = self._settings
        secret = s.secret_access_key.get_secret_value() if s.secret_access_key else None
        self._client = await self._stack.enter_async_context(
            get_session().create_client(
                "sqs",
                endpoint_url=s.endpoint_url,
                region_name=s.region,
                aws_access_key_id=s.access_key_id,
                aws_secret_access_key=secret,
            )
        )
        if s.create_queues:
            self._dlq_url = (await self._client.create_queue(QueueName=s.dead_letter_queue_name))[
                "QueueUrl"
            ]
            attrs = await self._client.get_queue_attributes(
                QueueUrl=self._dlq_url, AttributeNames=["QueueArn"]
            )
            policy = {
                "deadLetterTargetArn": attrs["Attributes"]["QueueArn"],
                "maxReceiveCount": str(self._max_receives + 1),
            }
            self._url = (
                await self._client.create_queue(
                    QueueName=s.queue_name,
                    Attributes={
                        "RedrivePolicy": json.dumps(policy),
                        "VisibilityTimeout": str(self._visibility),
                    },
                )
            )["QueueUrl"]
        else:
            self._url = (await self._client.get_queue_url(QueueName=s.queue_name))["QueueUrl"]
            self._dlq_url = (await self._client.get_queue_url(QueueName=s.dead_letter_queue_name))[
                "QueueUrl"
            ]

    async def close(self) -> None:
        if self._listening:
            await self._outbox.close()
            self._listening = False
        await self._stack.aclose()
        self._client = None

    async def send(
        self, conn: Connection, *, job_id: UUID, kind: str, tenant: str | None,
        payload: Mapping[str, Any],
    ) -> None:  # fmt: skip
        body = {"job_id": str(job_id), "kind": kind, "tenant": tenant, "payload": dict(payload)}
        await store.add_to_outbox(conn, job_id, body)

    def _message(self, raw: Mapping[str, Any]) -> Message:
        body = json.loads(raw["Body"])
        return Message(
            job_id=UUID(body["job_id"]),
            kind=body["kind"],
            tenant=body["tenant"],
            payload=body["payload"],
            receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            handle=raw["ReceiptHandle"],
        )

    async def receive(self, max_messages: int, wait_seconds: float) -> Batch:
        got = await self._client.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=min(20, math.ceil(wait_seconds)),
            VisibilityTimeout=self._visibility,
            AttributeNames=["ApproximateReceiveCount"],
        )
        batch = Batch([])
        for raw in got.get("Messages", []):
            message = self._message(raw)
            if message.receive_count > self._max_receives:
                # Past its attempts: release it so the redrive policy moves it on the next
                # receive; the worker marks the job failed.
                await self._change(message, 0)
                batch.dead.append(message)
            else:
                batch.messages.append(message)
        return batch

    def wake(self) -> None:
        return None  # a long poll ends by itself within poll_seconds (at most 20 s)

    async def _change(self, message: Message, seconds: float) -> None:
        await self._client.change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=message.handle, VisibilityTimeout=_seconds(seconds)
        )

    async def delete(self, message: Message, conn: Connection | None) -> None:
        await self._client.delete_message(QueueUrl=self._url, ReceiptHandle=message.handle)

    async def retry_later(self, message: Message, delay: float, conn: Connection | None) -> None:
        await self._change(message, delay)

    async def extend(self, message: Message, seconds: float) -> None:
        await self._change(message, seconds)

    async def dead_letter(self, message: Message, error: str, conn: Connection | None) -> None:
        # Visible again at once: the next receive finds it past maxReceiveCount... or one
        # receive before that, which marks nothing new and releases it again.
        await self._change(message, 0)

    async def depth(self) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]  # fmt: skip
        got = await self._client.get_queue_attributes(QueueUrl=self._url, AttributeNames=names)
        return sum(int(got["Attributes"].get(name, 0)) for name in names)

    async def dead_letters(self, limit: int = 10) -> list[Message]:
        got = await self._client.receive_message(
            QueueUrl=self._dlq_url,
            MaxNumberOfMessages=max(1, min(10, limit)),
            WaitTimeSeconds=1,
            VisibilityTimeout=0,
            AttributeNames=["ApproximateReceiveCount"],
        )
        return [self._message(raw) for raw in got.get("Messages", [])]

    async def prune_dead_letters(self, dead_before: datetime) -> int:
        return 0  # the dead-letter queue's own retention period drops them

    async def relay_once(self) -> int:
        """Send what the outbox holds now; the number of messages sent."""
        sent = 0
        while True:
            async with worker_transaction(self._pool) as conn:
                rows = await store.take_from_outbox(conn, self._settings.relay_batch)
                if not rows:
                    return sent
                answer = await self._client.send_message_batch(
                    QueueUrl=self._url,
                    Entries=[
                        {"Id": str(row.id), "MessageBody": json.dumps(row.body)} for row in rows
                    ],
                )
                failed = answer.get("Failed", [])
                if failed:  # roll the whole batch back; the sent ones go again, harmlessly
                    raise RuntimeError(f"SQS refused {len(failed)} messages: {failed[0]}")
            sent += len(rows)

    async def relay(self) -> None:
        if not self._listening:
            await self._outbox.start()
            self._listening = True
        delay = 0.5
        while True:
            try:
                await self.relay_once()
                delay = 0.5
                await self._outbox.wait(self._poll)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
