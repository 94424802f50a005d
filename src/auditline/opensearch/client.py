"""The async client and the writes: template, bulk indexing, deletions by ``seq`` range.

Every call that can fail because the cluster is down, overloaded or slow raises
:class:`~auditline.search.backend.SearchUnavailable` (and nothing else for those causes),
so the search service can fall back or answer 503 and the indexing task can be retried by
the queue. A request the cluster refuses for its content (a 4xx other than 429) is a bug
here and propagates as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Sequence
from typing import Any, Final, TypeVar

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import (
    ConnectionError as OpenSearchConnectionError,
)
from opensearchpy.exceptions import (
    NotFoundError,
    TransportError,
)

from auditline.config import OpenSearchSettings
from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
from auditline.opensearch.compiler import term
from auditline.opensearch.documents import IndexNames, doc_id, template, to_document
from auditline.search.backend import SearchUnavailable

T = TypeVar("T")
_RETRYABLE: Final = frozenset({429, 502, 503, 504})


def open_client(settings: OpenSearchSettings) -> AsyncOpenSearch:
    """A client for ``settings.url``; closed by :meth:`OpenSearchIndex.close`.

    No retries inside the client: a failed search falls back at once, and a failed
    indexing run is retried by the queue with its backoff.
    """
    auth = None
    if settings.username is not None and settings.password is not None:
        auth = (settings.username, settings.password.get_secret_value())
    return AsyncOpenSearch(
        hosts=[settings.url],
        http_auth=auth,
        verify_certs=settings.verify_certs,
        timeout=settings.request_timeout_seconds,
        max_retries=0,
        retry_on_timeout=False,
    )


async def guarded(call: Awaitable[T]) -> T:
    """*call*'s answer, or :class:`SearchUnavailable` when the cluster could not give one."""
    try:
        return await call
    except OpenSearchConnectionError as exc:  # refused, reset, timed out
        raise SearchUnavailable(f"OpenSearch is unreachable: {exc}") from exc
    except TransportError as exc:
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        if status in _RETRYABLE or status >= 500:
            raise SearchUnavailable(f"OpenSearch answered {status}") from exc
        raise


class IndexingFailed(RuntimeError):
    """Some documents of a bulk request were refused; the batch is retried as a whole."""


class OpenSearchIndex:
    """One deployment's indices on one cluster: *names* under its prefix."""

    def __init__(
        self, client: AsyncOpenSearch, names: IndexNames, *, shards: int = 1, replicas: int = 0
    ) -> None:
        self.client = client
        self.names = names
        self._shards = shards
        self._replicas = replicas
        self._template_ready = False

    async def close(self) -> None:
        await self.client.close()

    async def ensure_template(self) -> None:
        """Create or update the index template, once per process (new months use it)."""
        if self._template_ready:
            return
        body = template(self.names, shards=self._shards, replicas=self._replicas)
        await guarded(self.client.indices.put_index_template(name=self.names.template, body=body))
        self._template_ready = True

    async def write(self, events: Sequence[StoredEvent]) -> None:
        """Index *events* (any tenants) in one bulk request and wait until searches see
        them. Idempotent: a document's id is its tenant and event id."""
        if not events:
            return
        lines: list[dict[str, Any]] = []
        for stored in events:
            e = stored.event
            lines.append(
                {"index": {"_index": self.names.month(e.timestamp),
                           "_id": doc_id(e.tenant_id, e.id), "routing": e.tenant_id}}
            )  # fmt: skip
            lines.append(to_document(stored))
        answer = await guarded(self.client.bulk(body=lines, refresh="wait_for"))
        if answer.get("errors"):
            failed = [
                item["index"]["error"] for item in answer["items"] if "error" in item["index"]
            ]
            raise IndexingFailed(f"{len(failed)} documents refused, first: {failed[0]}")

    async def delete_ranges(self, tenant: TenantId, ranges: Sequence[tuple[int, int]]) -> int:
        """Delete *tenant*'s documents whose ``seq`` lies in any of *ranges* (inclusive);
        the number deleted. Idempotent."""
        if not ranges:
            return 0
        body = {
            "query": {
                "bool": {
                    "filter": [
                        term("tenant_id", tenant),
                        {"bool": {"should": [{"range": {"seq": {"gte": a, "lte": b}}}
                                             for a, b in ranges], "minimum_should_match": 1}},
                    ]
                }
            }
        }  # fmt: skip
        try:
            answer = await guarded(
                self.client.delete_by_query(
                    index=self.names.alias, body=body, routing=tenant, refresh=True,
                    conflicts="proceed",
                )
            )  # fmt: skip
        except NotFoundError:  # nothing indexed yet
            return 0
        return int(answer.get("deleted", 0))

    async def drop(self) -> None:
        """Remove every index and the template of this prefix (tests, and a full rebuild)."""
        await guarded(self.client.indices.delete(index=self.names.pattern))
        with contextlib.suppress(NotFoundError):
            await guarded(self.client.indices.delete_index_template(name=self.names.template))
