"""The asynchronous client: :class:`Client`'s methods as coroutines (asyncio or trio)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar, Unpack
from uuid import UUID

import anyio
import httpx

from auditline_client import _calls, proofs
from auditline_client import types as api
from auditline_client._http import (
    DEFAULT_TIMEOUT,
    AsyncClosing,
    Attempts,
    Call,
    Patience,
    Retries,
    client_options,
    finish,
)
from auditline_client.errors import NotSealed, problem_error
from auditline_client.proofs import Checkpoint, CheckpointKey, VerifiedEvent
from auditline_client.stream import STREAM_RETRIES, AsyncStream, StreamOptions, _Protocol

T = TypeVar("T")


class AsyncClient(AsyncClosing):
    """:class:`auditline_client.Client` for asynchronous code; the same methods, awaited.

    Use it as an async context manager, or await :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        tenant_id: str | None = None,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        retries: Retries | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.retries = retries or Retries()
        self._http = httpx.AsyncClient(
            transport=transport, **client_options(base_url, token, timeout)
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _open(self, call: Call[Any]) -> httpx.Response:
        request = call.request(self._http, self.tenant_id)
        attempts = Attempts(self.retries, call)
        while True:
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                wait = attempts.after_error(exc)
            else:
                if (answer := attempts.after_response(response)) is None:
                    return response
                await response.aclose()
                wait = answer
            await anyio.sleep(wait)

    async def send(self, call: Call[T]) -> T:
        response = await self._open(call)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return finish(call, response)

    # --- events

    async def create(self, **event: Unpack[api.NewEvent]) -> api.Event | api.Duplicate:
        return await self.send(_calls.create(event))

    async def create_many(
        self, events: Iterable[api.NewEvent], tenant_id: str | None = None
    ) -> api.BulkResult:
        return await self.send(_calls.create_many(events, tenant_id))

    async def get(self, event_id: str | UUID, tenant_id: str | None = None) -> api.Event:
        return await self.send(_calls.get(event_id, tenant_id))

    async def search(
        self, *, limit: int | None = None, order: api.Order = "desc", cursor: str | None = None,
        include_total: bool = False, facets: Sequence[api.FacetField] | None = None,
        facet_size: int | None = None, highlight: bool = False,
        **filters: Unpack[api.SearchFilters],
    ) -> api.Page:  # fmt: skip
        call = _calls.search(
            filters, limit=limit, order=order, cursor=cursor, include_total=include_total,
            facets=facets, facet_size=facet_size, highlight=highlight,
        )  # fmt: skip
        return await self.send(call)

    async def iter_events(
        self, *, page_size: int | None = None, order: api.Order = "desc",
        **filters: Unpack[api.SearchFilters],
    ) -> AsyncIterator[api.Event]:  # fmt: skip
        cursor: str | None = None
        while True:
            page = await self.search(limit=page_size, order=order, cursor=cursor, **filters)
            for event in page["items"]:
                yield event
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def export(
        self,
        path: str | os.PathLike[str],
        *,
        format: api.ExportFormat = "ndjson",
        order: api.Order = "asc",
        include_proofs: bool = False,
        **filters: Unpack[api.SearchFilters],
    ) -> int:
        call = _calls.export(filters, fmt=format, order=order, include_proofs=include_proofs)
        target = anyio.Path(path)
        partial = target.with_name(target.name + ".part")
        response = await self._open(call)
        try:
            if response.is_error:
                await response.aread()
                raise problem_error(response)
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in response.aiter_bytes():
                    await out.write(chunk)
        except BaseException:
            await partial.unlink(missing_ok=True)
            raise
        finally:
            await response.aclose()
        await partial.replace(target)
        return (await target.stat()).st_size

    async def stats(
        self, *, interval: api.Interval = "hour", **filters: Unpack[api.SearchFilters]
    ) -> api.Stats:
        return await self.send(_calls.stats(filters, interval=interval))

    # --- tenants (admins)

    async def list_tenants(self) -> list[api.Tenant]:
        return await self.send(_calls.list_tenants())

    async def create_tenant(self, tenant_id: str, name: str, **settings: Any) -> api.Tenant:
        return await self.send(_calls.create_tenant({"id": tenant_id, "name": name, **settings}))

    async def get_tenant(self, tenant_id: str) -> api.Tenant:
        return await self.send(_calls.get_tenant(tenant_id))

    async def update_tenant(
        self, tenant_id: str, **changes: Unpack[api.TenantChanges]
    ) -> api.Tenant:
        return await self.send(_calls.update_tenant(tenant_id, changes))

    # --- API keys (tenant admins)

    async def create_api_key(
        self, name: str, scopes: list[api.Scope], *, expires_at: datetime | None = None,
        tenant_id: str | None = None,
    ) -> api.CreatedApiKey:  # fmt: skip
        return await self.send(_calls.create_api_key(name, scopes, expires_at, tenant_id))

    async def list_api_keys(self, tenant_id: str | None = None) -> list[api.ApiKey]:
        return await self.send(_calls.list_api_keys(tenant_id))

    async def revoke_api_key(self, key_id: str | UUID, tenant_id: str | None = None) -> None:
        await self.send(_calls.revoke_api_key(key_id, tenant_id))

    # --- the live stream (asyncio)

    def stream(
        self, *, since: int | None = None, retries: Retries = STREAM_RETRIES,
        options: StreamOptions | None = None, **filters: Unpack[api.SearchFilters],
    ) -> AsyncStream:  # fmt: skip
        """:meth:`Client.stream` for asyncio (``async for item in audit.stream(...)``); the
        WebSocket library is asyncio-only, so under trio use the sync stream in a thread."""
        tenant, rest = _calls.split_tenant(filters)
        protocol = _Protocol(self._http, tenant or self.tenant_id, rest, since, retries)
        return AsyncStream(protocol, options or StreamOptions())

    # --- tamper evidence

    async def fetch_checkpoint_key(self) -> CheckpointKey:
        """The checkpoint key, trusted on first use: see :meth:`Client.fetch_checkpoint_key`."""
        return CheckpointKey.parse(await self.send(_calls.checkpoint_key()))

    async def checkpoint(self, *, key: CheckpointKey, tenant_id: str | None = None) -> Checkpoint:
        answer = await self.send(_calls.checkpoint(tenant_id))
        return Checkpoint.open(answer["checkpoint"], key, tenant_id=tenant_id or self.tenant_id)

    async def verify_event(
        self, event_id: str | UUID, *, key: CheckpointKey, trusted: Checkpoint | None = None,
        wait: float = 10.0, tenant_id: str | None = None,
    ) -> VerifiedEvent:  # fmt: skip
        """See :meth:`Client.verify_event`."""
        event = await self.get(event_id, tenant_id)
        patience = Patience(wait)
        while True:
            try:
                proof = await self.send(_calls.proof(event_id, tenant_id))
                break
            except NotSealed as exc:
                await anyio.sleep(patience.wait_after(exc))
        checkpoint = proofs.check_event(event, proof, key)
        if trusted is not None:
            await self._extends(trusted, checkpoint, tenant_id)
        return VerifiedEvent(event, checkpoint)

    async def verify_consistency(
        self, trusted: Checkpoint, *, key: CheckpointKey, newer: Checkpoint | None = None,
        tenant_id: str | None = None,
    ) -> Checkpoint:  # fmt: skip
        """See :meth:`Client.verify_consistency`."""
        if newer is None:
            newer = await self.checkpoint(key=key, tenant_id=tenant_id)
        await self._extends(trusted, newer, tenant_id)
        return newer

    async def _extends(self, old: Checkpoint, new: Checkpoint, tenant_id: str | None) -> None:
        proofs.check_order(old, new)
        path: list[str] = []
        if 0 < old.size < new.size:
            answer = await self.send(_calls.consistency(old.size, new.size, tenant_id))
            path = answer["consistency_path"]
        proofs.check_consistency(old, new, path)
