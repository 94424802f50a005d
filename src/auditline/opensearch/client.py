"""The async client and the writes: template, bulk indexing, deletions by ``seq`` range.

Every call that can fail because the cluster is down, overloaded or slow raises
:class:`~auditline.search.backend.SearchUnavailable` (and nothing else for those causes),
so the search service can fall back or answer 503 and the indexing task can be retried by
the queue. A request the cluster refuses for its content (a 4xx other than 429) is a bug
here and propagates as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

import botocore.session
from opensearchpy import AsyncHttpConnection, AsyncOpenSearch, AWSV4SignerAsyncAuth
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


def _next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


_RETRYABLE: Final = frozenset({429, 502, 503, 504})


async def open_client(settings: OpenSearchSettings) -> AsyncOpenSearch:
    """A client for ``settings.url``; closed by :meth:`OpenSearchIndex.close`.

    No retries inside the client: a failed search falls back at once, and a failed
    indexing run is retried by the queue with its backoff. With ``aws_sigv4`` every
    request is signed for Amazon OpenSearch Service (:func:`aws_signer`), whose
    credentials are looked up in a thread: botocore's chain is synchronous and may ask
    the EC2 or ECS metadata service (seconds, with its timeouts and retries), which must
    not stall the event loop of the process starting up.
    """
    auth: Any = None
    extra: dict[str, Any] = {}
    if settings.aws_sigv4:
        auth = await asyncio.to_thread(aws_signer, settings)
        # The aiohttp connection opensearch-py uses by default takes basic auth only; this
        # one calls a signer for each request's headers.
        extra["connection_class"] = AsyncHttpConnection
    elif settings.username is not None and settings.password is not None:
        auth = (settings.username, settings.password.get_secret_value())
    return AsyncOpenSearch(
        hosts=[settings.url],
        http_auth=auth,
        verify_certs=settings.verify_certs,
        timeout=settings.request_timeout_seconds,
        max_retries=0,
        retry_on_timeout=False,
        **extra,
    )


def aws_signer(settings: OpenSearchSettings) -> AWSV4SignerAsyncAuth:
    """A SigV4 signer for an Amazon OpenSearch Service domain (``es``) with botocore's
    default credential chain; blocking (:func:`open_client` calls it in a thread).
    Refreshable credentials (instance and task roles) are refreshed by botocore as they
    near expiry, inside the signing of a request: that refresh, once every few hours, is
    still synchronous.

    Raises ``ValueError`` when the chain finds no credentials: a misconfigured deployment
    should not start and then fail every search and indexing run."""
    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise ValueError("opensearch.aws_sigv4 is set but no AWS credentials were found")
    if settings.aws_region is None:  # the settings refuse it; for the type checker
        raise ValueError("opensearch.aws_sigv4 needs opensearch.aws_region")
    return AWSV4SignerAsyncAuth(credentials, settings.aws_region, settings.aws_service)


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
    """One deployment's indices on one cluster: *names* under its prefix, in generations
    (see :class:`~auditline.opensearch.documents.IndexNames`).

    Which generation is live is kept by the cluster itself, not by a setting: it is the
    generation of the indices the read alias is on (or, before any index exists, the one
    whose template attaches the alias). Writers ask after taking a tenant's indexing lock
    (:meth:`live_generation`), and a rebuild moves the alias while it holds every tenant's
    lock, so no write lands in a generation that has stopped being live.
    """

    def __init__(
        self, client: AsyncOpenSearch, names: IndexNames, *, shards: int = 1, replicas: int = 0
    ) -> None:
        self.client = client
        self.names = names
        self._shards = shards
        self._replicas = replicas

    async def close(self) -> None:
        await self.client.close()

    def _template(self, generation: int, *, live: bool) -> dict[str, Any]:
        return template(
            self.names, generation, shards=self._shards, replicas=self._replicas, live=live
        )

    async def _templates(self) -> dict[int, bool]:
        """Each generation with a template, and whether that template attaches the alias."""
        try:
            found = await guarded(self.client.indices.get_index_template(name=self.names.templates))
        except NotFoundError:
            return {}
        out: dict[int, bool] = {}
        for item in found.get("index_templates", []):
            generation = self.names.generation_of(item["name"])
            if generation is not None:
                aliases = item["index_template"].get("template", {}).get("aliases") or {}
                out[generation] = self.names.alias in aliases
        return out

    async def _indices(self) -> dict[str, bool]:
        """Every index of this prefix (any generation) and whether the alias is on it."""
        try:
            found = await guarded(self.client.indices.get_alias(index=self.names.pattern))
        except NotFoundError:
            return {}
        return {
            name: self.names.alias in (body.get("aliases") or {})
            for name, body in (found or {}).items()
        }

    async def live_generation(self) -> int:
        """The generation searches read (0: none yet, before the first template)."""
        try:
            found = await guarded(self.client.indices.get_alias(name=self.names.alias))
        except NotFoundError:
            found = {}
        generations = {self.names.generation_of(name) for name in found}
        generations.discard(None)
        if generations:
            return max(g for g in generations if g is not None)
        with_alias = [g for g, live in (await self._templates()).items() if live]
        return max(with_alias, default=0)

    async def ensure_template(self) -> int:
        """The live generation, after creating the first one's template if there is none.

        An existing live generation's template is left as it is, even if this code's
        mapping differs: new months must match the old ones, and a new mapping is rolled
        out by building a new generation (``auditline reindex --all``).

        Upgrading from the layout before generations: its template (``<prefix>-events``)
        is deleted before the first generation's is put, so that no new index is made
        from it; its indices keep the read alias (searches still find what they hold,
        and the indexer's progress, kept in PostgreSQL, goes on from where it was, into
        the new generation) until ``reindex --all`` moves the alias and drops them."""
        live = await self.live_generation()
        if live:
            return live
        await self.drop_legacy_template()
        body = self._template(1, live=True)
        await guarded(
            self.client.indices.put_index_template(name=self.names.template(1), body=body)
        )
        return 1

    async def write(
        self,
        events: Sequence[StoredEvent],
        *,
        generation: int | None = None,
        refresh: bool = True,
    ) -> None:
        """Index *events* (any tenants) in one bulk request into *generation* (default: the
        live one); with *refresh*, searches see them when it returns. Idempotent: a
        document's id is its tenant and event id.

        The indexer writes a run's batches without *refresh* and calls :meth:`refresh`
        once before its progress commits: waiting for the periodic refresh after each bulk
        (``wait_for``) cost up to a second per tenant and batch, which made a pass over
        100 tenants take minutes (measured: 610 events/s)."""
        if not events:
            return
        if generation is None:
            generation = await self.ensure_template()
        lines: list[dict[str, Any]] = []
        for stored in events:
            e = stored.event
            lines.append(
                {"index": {"_index": self.names.month(e.timestamp, generation),
                           "_id": doc_id(e.tenant_id, e.id), "routing": e.tenant_id}}
            )  # fmt: skip
            lines.append(to_document(stored))
        answer = await guarded(self.client.bulk(body=lines, refresh="true" if refresh else "false"))
        if answer.get("errors"):
            failed = [
                item["index"]["error"] for item in answer["items"] if "error" in item["index"]
            ]
            raise IndexingFailed(f"{len(failed)} documents refused, first: {failed[0]}")

    async def refresh(self, generation: int | None = None) -> None:
        """Make everything written to *generation* (default: the live one) searchable."""
        target = (
            self.names.alias if generation is None else self.names.generation_pattern(generation)
        )
        try:
            await guarded(self.client.indices.refresh(index=target, allow_no_indices=True))
        except NotFoundError:  # nothing written yet
            return

    async def delete_ranges(
        self, tenant: TenantId, ranges: Sequence[tuple[int, int]], *, generation: int | None = None
    ) -> int:
        """Delete *tenant*'s documents whose ``seq`` lies in any of *ranges* (inclusive)
        from *generation* (default: the live one, through the alias); the number deleted.
        Idempotent."""
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
        target = (
            self.names.alias if generation is None else self.names.generation_pattern(generation)
        )
        try:
            answer = await guarded(
                self.client.delete_by_query(
                    index=target, body=body, routing=tenant, refresh=True,
                    conflicts="proceed", allow_no_indices=True,
                )
            )  # fmt: skip
        except NotFoundError:  # nothing indexed yet
            return 0
        return int(answer.get("deleted", 0))

    # -----------------------------------------------------------------------------------
    # Generations: build beside the live one, then swap

    async def begin_generation(self) -> tuple[int, int]:
        """(live, new): a new generation's template in place, without the read alias, after
        removing whatever an interrupted earlier build left (any generation but the live
        one). The caller makes sure only one build runs at a time."""
        live = await self.live_generation()
        known = set(await self._templates())
        known |= {g for g in map(self.names.generation_of, await self._indices()) if g}
        for stale in sorted(known - {live}):
            await self.drop_generation(stale)
        new = max(known | {live}) + 1
        await guarded(
            self.client.indices.put_index_template(
                name=self.names.template(new), body=self._template(new, live=False)
            )
        )
        return live, new

    async def swap(self, old: int, new: int) -> None:
        """Make *new* the live generation: its template attaches the alias from now on,
        and one ``_aliases`` request moves the alias from *old*'s indices to *new*'s, so a
        search reads either generation whole, never both or neither. *old*'s template is
        removed; its indices stay until :meth:`drop_generation` (a search already running
        on them may finish)."""
        await guarded(
            self.client.indices.put_index_template(
                name=self.names.template(new), body=self._template(new, live=True)
            )
        )
        actions: list[dict[str, Any]] = []
        for name, aliased in sorted((await self._indices()).items()):
            generation = self.names.generation_of(name)
            if generation == new and not aliased:
                actions.append({"add": {"index": name, "alias": self.names.alias}})
            elif generation != new and aliased:
                actions.append({"remove": {"index": name, "alias": self.names.alias}})
        if actions:
            await guarded(self.client.indices.update_aliases(body={"actions": actions}))
        if old and old != new:
            with contextlib.suppress(NotFoundError):
                await guarded(
                    self.client.indices.delete_index_template(name=self.names.template(old))
                )

    async def drop_generation(self, generation: int) -> None:
        """Remove *generation*'s indices and template (never call it on the live one)."""
        await guarded(
            self.client.indices.delete(
                index=self.names.generation_pattern(generation), allow_no_indices=True
            )
        )
        with contextlib.suppress(NotFoundError):
            await guarded(
                self.client.indices.delete_index_template(name=self.names.template(generation))
            )

    async def drop_legacy_template(self) -> None:
        """Delete the pre-generation template ``<prefix>-events``, if there is one."""
        with contextlib.suppress(NotFoundError):
            await guarded(
                self.client.indices.delete_index_template(name=self.names.legacy_template)
            )

    async def drop_legacy(self) -> list[str]:
        """Delete the pre-generation monthly indices (``<prefix>-events-<YYYY.MM>``) and
        template; the indices deleted. Only once the alias has left them (:meth:`swap`)."""
        await self.drop_legacy_template()
        legacy = sorted(name for name in await self._indices() if self.names.is_legacy(name))
        if legacy:
            await guarded(self.client.indices.delete(index=",".join(legacy)))
        return legacy

    async def drop_empty_months(self, before: datetime) -> list[str]:
        """Drop the live generation's monthly indices for months ending by *before* that
        hold no document any more (retention, cleanup and archival removed every tenant's
        events there); the names dropped.

        A month is write-blocked, refreshed and counted again before it is dropped, so a
        late event indexed meanwhile keeps it; a bulk request that meets the block fails
        and is retried by the indexer (its progress did not move), and a retried write
        into a dropped month creates it again from the live template, alias included.

        The block never outlives the pass that set it: it is lifted in a ``finally``
        whatever happens after it was set (a failed refresh or count, a cancelled job),
        unless the index was deleted. A block that survived anyway (the process died
        between the two requests) is lifted by the next pass, on any month of the live
        generation that is not dropped, before it is skipped: a late event for that month
        would otherwise be refused until someone removed the block by hand.
        """
        live = await self.live_generation()
        if not live:
            return []
        try:
            stats = await guarded(
                self.client.indices.stats(index=self.names.generation_pattern(live), metric="docs")
            )
        except NotFoundError:
            return []
        names = sorted(stats.get("indices", {}))
        blocked = await self._write_blocked(self.names.generation_pattern(live))
        dropped: list[str] = []
        for name in names:
            month = self.names.month_of(name)
            empty = int(stats["indices"][name]["primaries"]["docs"]["count"]) == 0
            if month is None or _next_month(month) > before or not empty:
                if name in blocked:  # left by a pass that stopped half-way
                    await self._unblock(name)
                continue
            if await self._drop_if_still_empty(name):
                dropped.append(name)
        return dropped

    async def _write_blocked(self, pattern: str) -> set[str]:
        """The indices matching *pattern* with ``index.blocks.write`` set."""
        try:
            found = await guarded(
                self.client.indices.get_settings(
                    index=pattern, name="index.blocks.write", flat_settings=True
                )
            )
        except NotFoundError:
            return set()
        return {
            name
            for name, body in (found or {}).items()
            if str(body.get("settings", {}).get("index.blocks.write", "false")).lower() == "true"
        }

    async def _unblock(self, name: str) -> None:
        with contextlib.suppress(NotFoundError):
            await guarded(
                self.client.indices.put_settings(index=name, body={"index.blocks.write": None})
            )

    async def _drop_if_still_empty(self, name: str) -> bool:
        """Block writes to *name*, then delete it if it still holds nothing; the block is
        removed again whenever the index is kept, however this ends."""
        await guarded(
            self.client.indices.put_settings(index=name, body={"index.blocks.write": True})
        )
        deleted = False
        try:
            await guarded(self.client.indices.refresh(index=name))
            left = await guarded(self.client.count(index=name))
            if int(left["count"]) == 0:
                await guarded(self.client.indices.delete(index=name))
                deleted = True
        finally:
            if not deleted:
                await self._unblock(name)
        return deleted

    async def drop(self) -> None:
        """Remove every index and template of this prefix (tests, and a full rebuild)."""
        await guarded(self.client.indices.delete(index=self.names.pattern))
        with contextlib.suppress(NotFoundError):
            await guarded(self.client.indices.delete_index_template(name=self.names.templates))
        await self.drop_legacy_template()
