"""The synchronous client."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, Unpack
from uuid import UUID

import httpx

from auditline_client import _calls, proofs
from auditline_client import types as api
from auditline_client._http import (
    DEFAULT_TIMEOUT,
    Attempts,
    Call,
    Closing,
    Patience,
    Retries,
    client_options,
    finish,
)
from auditline_client.errors import NotSealed, problem_error
from auditline_client.proofs import Checkpoint, CheckpointKey, VerifiedEvent
from auditline_client.stream import STREAM_RETRIES, Stream, StreamOptions, _Protocol

T = TypeVar("T")


class Client(Closing):
    """A connection to an Auditline server, for one credential (a JWT or an ``alk_`` key).

    ``tenant_id`` is the tenant calls act on when they do not name one (needed only when
    the credential grants several). Use it as a context manager, or call :meth:`close`.
    Thread-safe: one client can serve a whole application.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        tenant_id: str | None = None,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        retries: Retries | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.retries = retries or Retries()
        self._http = httpx.Client(transport=transport, **client_options(base_url, token, timeout))

    def close(self) -> None:
        self._http.close()

    def _open(self, call: Call[Any]) -> httpx.Response:
        """Send *call* until its answer is final; the response is open (streamed)."""
        request = call.request(self._http, self.tenant_id)
        attempts = Attempts(self.retries, call)
        while True:
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                wait = attempts.after_error(exc)
            else:
                if (answer := attempts.after_response(response)) is None:
                    return response
                response.close()
                wait = answer
            time.sleep(wait)

    def send(self, call: Call[T]) -> T:
        """Send one call (from ``auditline_client._calls``) and read its answer."""
        response = self._open(call)
        try:
            response.read()
        finally:
            response.close()
        return finish(call, response)

    # --- events

    def create(self, **event: Unpack[api.NewEvent]) -> api.Event | api.Duplicate:
        """Store one event; returns it as stored (201), or a :class:`api.Duplicate` when an
        event with its id was stored before (a retry that had reached the server)."""
        return self.send(_calls.create(event))

    def create_many(
        self, events: Iterable[api.NewEvent], tenant_id: str | None = None
    ) -> api.BulkResult:
        """Store up to 1,000 events in one all-or-nothing request."""
        return self.send(_calls.create_many(events, tenant_id))

    def get(self, event_id: str | UUID, tenant_id: str | None = None) -> api.Event:
        return self.send(_calls.get(event_id, tenant_id))

    def search(
        self, *, limit: int | None = None, order: api.Order = "desc", cursor: str | None = None,
        include_total: bool = False, facets: Sequence[api.FacetField] | None = None,
        facet_size: int | None = None, highlight: bool = False,
        **filters: Unpack[api.SearchFilters],
    ) -> api.Page:  # fmt: skip
        """One page of matching events; pass ``next_cursor`` back as ``cursor``."""
        call = _calls.search(
            filters, limit=limit, order=order, cursor=cursor, include_total=include_total,
            facets=facets, facet_size=facet_size, highlight=highlight,
        )  # fmt: skip
        return self.send(call)

    def iter_events(
        self, *, page_size: int | None = None, order: api.Order = "desc",
        **filters: Unpack[api.SearchFilters],
    ) -> Iterator[api.Event]:  # fmt: skip
        """Every matching event, page after page: each exactly once, whatever is written
        meanwhile (the server's keyset cursors)."""
        cursor: str | None = None
        while True:
            page = self.search(limit=page_size, order=order, cursor=cursor, **filters)
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def export(
        self,
        path: str | os.PathLike[str],
        *,
        format: api.ExportFormat = "ndjson",
        order: api.Order = "asc",
        include_proofs: bool = False,
        **filters: Unpack[api.SearchFilters],
    ) -> int:
        """Stream every matching event to the file *path* (written whole or not at all);
        returns the number of bytes written."""
        call = _calls.export(filters, fmt=format, order=order, include_proofs=include_proofs)
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        response = self._open(call)
        try:
            if response.is_error:
                response.read()
                raise problem_error(response)
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            response.close()
        partial.replace(target)
        return target.stat().st_size

    def stats(
        self, *, interval: api.Interval = "hour", **filters: Unpack[api.SearchFilters]
    ) -> api.Stats:
        """Totals, breakdowns and a timeline for [start, end) (default: the last 24 hours)."""
        return self.send(_calls.stats(filters, interval=interval))

    # --- tenants (admins)

    def list_tenants(self) -> list[api.Tenant]:
        return self.send(_calls.list_tenants())

    def create_tenant(self, tenant_id: str, name: str, **settings: Any) -> api.Tenant:
        """Create a tenant (platform admin); ``settings`` are the other fields of
        ``POST /api/v1/tenants`` (``retention_days``, ``archive_after_days``, ...)."""
        return self.send(_calls.create_tenant({"id": tenant_id, "name": name, **settings}))

    def get_tenant(self, tenant_id: str) -> api.Tenant:
        return self.send(_calls.get_tenant(tenant_id))

    def update_tenant(self, tenant_id: str, **changes: Unpack[api.TenantChanges]) -> api.Tenant:
        return self.send(_calls.update_tenant(tenant_id, changes))

    # --- API keys (tenant admins)

    def create_api_key(
        self, name: str, scopes: list[api.Scope], *, expires_at: datetime | None = None,
        tenant_id: str | None = None,
    ) -> api.CreatedApiKey:  # fmt: skip
        """A new key; its secret (``key``) is in this answer only."""
        return self.send(_calls.create_api_key(name, scopes, expires_at, tenant_id))

    def list_api_keys(self, tenant_id: str | None = None) -> list[api.ApiKey]:
        return self.send(_calls.list_api_keys(tenant_id))

    def revoke_api_key(self, key_id: str | UUID, tenant_id: str | None = None) -> None:
        self.send(_calls.revoke_api_key(key_id, tenant_id))

    # --- the live stream

    def stream(
        self, *, since: int | None = None, retries: Retries = STREAM_RETRIES,
        options: StreamOptions | None = None, **filters: Unpack[api.SearchFilters],
    ) -> Stream:  # fmt: skip
        """The tenant's events as they are stored, filtered like :meth:`search`; iterate it
        (``with audit.stream(...) as events: for item in events: ...``).

        Every matching event is yielded once, in log order, as a
        :class:`~auditline_client.stream.StreamEvent`: across dropped connections and
        server closes the stream resumes from the last cursor by itself. ``since`` starts
        after that cursor (a ``StreamEvent.cursor`` kept from before; ``-1``: the whole
        log); without it the stream starts now. Nothing is sent before iteration starts.
        """
        tenant, rest = _calls.split_tenant(filters)
        protocol = _Protocol(self._http, tenant or self.tenant_id, rest, since, retries)
        return Stream(protocol, options or StreamOptions())

    # --- tamper evidence

    def fetch_checkpoint_key(self) -> CheckpointKey:
        """The server's checkpoint verifier key, **trusted on first use**.

        A key fetched from the server proves nothing about that server: use this once,
        over a connection you trust, store the key (``str(key)``) in your configuration and
        pin it (``CheckpointKey.parse``) from then on. A server whose key changes under
        you is itself a warning.
        """
        return CheckpointKey.parse(self.send(_calls.checkpoint_key()))

    def checkpoint(self, *, key: CheckpointKey, tenant_id: str | None = None) -> Checkpoint:
        """The newest checkpoint of the tenant's log, its signature verified with *key*.
        Keep its ``note`` to verify later that the log was only appended to."""
        answer = self.send(_calls.checkpoint(tenant_id))
        return Checkpoint.open(answer["checkpoint"], key, tenant_id=tenant_id or self.tenant_id)

    def verify_event(
        self, event_id: str | UUID, *, key: CheckpointKey, trusted: Checkpoint | None = None,
        wait: float = 10.0, tenant_id: str | None = None,
    ) -> VerifiedEvent:  # fmt: skip
        """Prove that the event, as the server returns it now, is the one the log committed
        to: fetch it and its inclusion proof, verify the proof's checkpoint with the pinned
        *key*, hash the event's fields (RFC 8785, RFC 9162) and follow the proof to the
        signed root. With *trusted* (a checkpoint kept from before), also prove that the
        log extends it. An event not sealed yet (about a second after it was stored) is
        waited for at most *wait* seconds, then :class:`NotSealed` is raised.

        Raises :class:`AlteredEvent`, :class:`UntrustedCheckpoint` or
        :class:`InconsistentLog` when the proof fails.
        """
        event = self.get(event_id, tenant_id)
        patience = Patience(wait)
        while True:
            try:
                proof = self.send(_calls.proof(event_id, tenant_id))
                break
            except NotSealed as exc:
                time.sleep(patience.wait_after(exc))
        checkpoint = proofs.check_event(event, proof, key)
        if trusted is not None:
            self._extends(trusted, checkpoint, tenant_id)
        return VerifiedEvent(event, checkpoint)

    def verify_consistency(
        self, trusted: Checkpoint, *, key: CheckpointKey, newer: Checkpoint | None = None,
        tenant_id: str | None = None,
    ) -> Checkpoint:  # fmt: skip
        """Prove that the log was only appended to since *trusted*: that *newer* (default:
        the newest checkpoint, verified with *key*) extends it (RFC 9162 consistency
        proof). Returns the newer checkpoint, the one to keep from now on. Raises
        :class:`InconsistentLog` for a log rolled back or forked."""
        if newer is None:
            newer = self.checkpoint(key=key, tenant_id=tenant_id)
        self._extends(trusted, newer, tenant_id)
        return newer

    def _extends(self, old: Checkpoint, new: Checkpoint, tenant_id: str | None) -> None:
        proofs.check_order(old, new)
        path: list[str] = []
        if 0 < old.size < new.size:
            answer = self.send(_calls.consistency(old.size, new.size, tenant_id))
            path = answer["consistency_path"]
        proofs.check_consistency(old, new, path)
