"""Indices of one's own on the shared test node: a unique prefix per use, dropped after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from auditline.config import OpenSearchSettings
from auditline.opensearch.client import OpenSearchIndex, open_client
from auditline.opensearch.documents import IndexNames
from tests.services.fixtures import Endpoint


def node_settings(endpoint: Endpoint, prefix: str | None = None) -> OpenSearchSettings:
    """Settings for *endpoint* under a fresh prefix; no replicas (one node: they would
    never be assigned and the indices would stay yellow)."""
    return OpenSearchSettings(
        url=endpoint.url,
        index_prefix=prefix or f"t{uuid.uuid4().hex[:12]}",
        replicas=0,
        request_timeout_seconds=30,
    )


@asynccontextmanager
async def opensearch_index(
    endpoint: Endpoint, *, shards: int = 1
) -> AsyncIterator[OpenSearchIndex]:
    """An index family of its own (template in place), dropped at the end."""
    settings = node_settings(endpoint)
    index = OpenSearchIndex(
        await open_client(settings), IndexNames(settings.index_prefix), shards=shards, replicas=0
    )
    await index.ensure_template()
    try:
        yield index
    finally:
        try:
            await index.drop()
        finally:
            await index.close()
