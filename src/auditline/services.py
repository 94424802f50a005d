"""The composition root: every service of a process, built from the settings in one place.

``open_services`` is the one start-up sequence. The API's lifespan, every CLI command and
(as it lands) the worker open it, use what it yields and leave it to close everything
again, in reverse order. Nothing else creates a pool, a writer or a service, so an operator's
command and an API request run the same code with the same guarantees: row-level security
checked, partitions ready, access and changes recorded.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from auditline.admission import ReadAdmission
from auditline.config import Settings
from auditline.domain.tenants import TenantId
from auditline.evidence.proofs import ProofService
from auditline.evidence.sealer import Sealer
from auditline.evidence.witness import ConfiguredWitness, open_witness
from auditline.indexing.rollups import RollupFolder
from auditline.indexing.service import SearchIndexer
from auditline.ingest.access import AccessRecorder
from auditline.ingest.service import Ingest
from auditline.ingest.tenant_rules import TenantRules, database_loader
from auditline.ingest.writer import EventWriter
from auditline.integrity.note import Verifier
from auditline.integrity.signer import local_signer
from auditline.jobs.postgres import PostgresQueue
from auditline.jobs.queue import Queue
from auditline.jobs.service import Jobs
from auditline.jobs.sqs import SqsQueue
from auditline.jobs.upkeep import ensure_partitions_ahead
from auditline.lifecycle.archive.service import ArchiveService
from auditline.lifecycle.archive.store import open_store
from auditline.lifecycle.backup import Backups
from auditline.lifecycle.retention import RetentionService
from auditline.metrics import Metrics, PoolName
from auditline.opensearch.backend import OpenSearchSearch
from auditline.opensearch.client import OpenSearchIndex, open_client
from auditline.opensearch.documents import IndexNames
from auditline.runtime import database, signing_key
from auditline.search.backend import SearchUnavailable
from auditline.search.routing import RoutedSearch
from auditline.search.service import SearchService
from auditline.security.service import Security, build_security
from auditline.security.tokens import SigningKey
from auditline.storage import integrity as integrity_store
from auditline.storage.database import Connection, open_pool
from auditline.storage.migrations import migrate
from auditline.storage.rls import require_row_level_security
from auditline.storage.search.backend import PostgresSearch, postgres_search_service
from auditline.stream.announce import PostgresAnnouncements
from auditline.stream.hub import StreamHub
from auditline.stream.service import StreamService
from auditline.tenancy.scope import PLATFORM, for_system
from auditline.tenancy.service import TenantService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """Everything requests, commands and jobs use; made and closed by :func:`open_services`."""

    settings: Settings
    pool: AsyncConnectionPool[Connection]
    read_pool: AsyncConnectionPool[Connection]
    metrics: Metrics
    admission: ReadAdmission
    writer: EventWriter
    rollups: RollupFolder
    """Folds the hourly rollups' deltas in the background (``indexing.rollups``)."""
    access: AccessRecorder
    signing_key: SigningKey
    security: Security
    ingest: Ingest
    search: SearchService
    tenants: TenantService
    sealer: Sealer
    witness: ConfiguredWitness
    """Where every checkpoint is also kept, outside the database (the sealer appends)."""
    proofs: ProofService
    checkpoint_verifier: Verifier
    """The public half of the checkpoint key, published at /.well-known."""
    streams: StreamService
    """Live streams; its hub listens only once started (the API's lifespan does)."""
    jobs: Jobs
    retention: RetentionService
    archive: ArchiveService
    backups: Backups
    indexer: SearchIndexer | None = None
    """Follows every tenant's log into OpenSearch; None without ``opensearch.url``."""


async def open_indexer(
    settings: Settings, pool: AsyncConnectionPool[Connection], metrics: Metrics
) -> SearchIndexer | None:
    """The OpenSearch indexer when ``opensearch.url`` is set (else None: PostgreSQL alone).

    A cluster that is down at start-up does not stop the service: ingest never needs it,
    searches fall back or answer 503, and the indexing task puts the template in place on
    its first successful run.
    """
    config = settings.opensearch
    if config.url is None:
        return None
    index = OpenSearchIndex(
        await open_client(config), IndexNames(config.index_prefix),
        shards=config.shards, replicas=config.replicas,
    )  # fmt: skip
    try:
        await index.ensure_template()
    except SearchUnavailable as exc:
        log.warning("OpenSearch unavailable at start-up (searches fall back): %s", exc)
    return SearchIndexer(pool, index, batch_size=config.index_batch_size, metrics=metrics)


def routed_search(
    search: SearchService,
    indexer: SearchIndexer,
    settings: Settings,
    access: AccessRecorder,
    metrics: Metrics,
) -> SearchService:
    """*search* with OpenSearch answering the kinds of query configured for it."""
    chosen = settings.search
    opensearch = OpenSearchSearch(
        indexer.index, indexer.watermark, exact_total_limit=chosen.exact_total_limit,
        facet_budget_ms=chosen.facet_budget_ms,
    )  # fmt: skip
    routed = RoutedSearch(
        search.backend,
        filters=opensearch if chosen.filter_backend == "opensearch" else None,
        text=opensearch if chosen.text_backend == "opensearch" else None,
        fallback=chosen.on_unavailable == "postgres",
        on_fallback=lambda operation: metrics.search_fallbacks.labels(operation).inc(),
    )
    # Statistics stay on PostgreSQL's rollups whatever answers searches (StatsBackend).
    return SearchService(
        routed,
        search.events,
        search.cursors,
        chosen,
        access,
        stats=search.stats_backend,
        highlighter=search.highlighter,
    )


def job_tenant(tenant: str | None) -> TenantId:
    """The tenant a job acts on: the one it was submitted for (None: the platform)."""
    if tenant is None:
        return PLATFORM
    return for_system(tenant, reason="a job acts on the tenant it was submitted for")


def build_queue(settings: Settings, pool: AsyncConnectionPool[Connection], url: str) -> Queue:
    """The configured queue backend (connected lazily, by the worker that receives)."""
    jobs = settings.jobs
    if jobs.backend == "sqs":
        return SqsQueue(
            pool,
            url,
            jobs.sqs,
            visibility_seconds=jobs.visibility_timeout_seconds,
            max_receives=jobs.max_receives,
            poll_seconds=jobs.poll_seconds,
        )
    return PostgresQueue(
        pool,
        url,
        visibility_seconds=jobs.visibility_timeout_seconds,
        max_receives=jobs.max_receives,
    )


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Migrate, connect and build every service; close them all when the block ends.

    The database is ``settings.database.url``, or the data dir's embedded server (started
    if needed). Start-up refuses to go on if the application role could bypass row-level
    security (unless ``database.require_rls`` is off, for debugging).

    Two pools: the write pool (``database.pool_*``: ingest, access records, tenants, keys,
    authentication) and the read pool (``reads.max_concurrent`` connections: searches,
    exports, statistics, reads by id). Reads cannot take a connection ingest needs, and
    with the read admission limit equal to the read pool's size, an admitted read never
    waits for a connection either (``admission``).
    """
    metrics = Metrics(tenant_labels=settings.metrics.tenant_labels)
    with database(settings) as url:
        await migrate(url, app_role=settings.database.app_role)
        pool = await open_pool(url, settings.database, name="auditline-write")
        read_pool = await open_pool(
            url, settings.database, name="auditline-read", min_size=1,
            max_size=settings.reads.max_concurrent, niceness=settings.reads.backend_niceness,
        )  # fmt: skip
        metrics.add_sampler(_pool_sampler(metrics, {"write": pool, "read": read_pool}))
        try:
            writer = EventWriter(
                pool,
                group_commit=settings.ingest.group_commit,
                max_group_events=settings.ingest.max_group_events,
                linger=settings.ingest.group_linger_ms / 1000,
                metrics=metrics,
            )
            await writer.start()
            folder = RollupFolder(
                pool, interval=settings.ingest.rollup_fold_seconds, metrics=metrics
            )
            await folder.start()
            try:
                await ensure_partitions_ahead(writer, settings)
                if settings.database.require_rls:
                    await require_row_level_security(pool)
                key = signing_key(settings)
                access = AccessRecorder(writer, settings.ingest)
                rules = TenantRules(
                    database_loader(pool), ttl_seconds=settings.ingest.masking_rules_ttl_seconds
                )
                search = postgres_search_service(
                    read_pool, settings.search, key.private, access, settings.reads
                )
                indexer = await open_indexer(settings, pool, metrics)
                if indexer is not None:
                    search = routed_search(search, indexer, settings, access, metrics)
                # Ingest's own lookup (an idempotent retry's seq) stays on the write pool.
                lookup = PostgresSearch(pool)
                checkpoint_signer, _ = local_signer(
                    settings.checkpoint_key_path, settings.integrity.origin
                )
                queue = build_queue(settings, pool, url)
                jobs = Jobs(pool, queue, job_tenant)
                retention = RetentionService(
                    pool, writer, access, settings.retention, jobs=jobs,
                    sealed_through=integrity_store.sealed_through,
                )  # fmt: skip
                try:
                    async with open_store(settings) as cold, open_witness(settings) as witness:
                        sealer = Sealer(
                            pool,
                            checkpoint_signer,
                            settings.integrity.origin,
                            witness,
                            max_leaves=settings.integrity.max_leaves_per_seal,
                            metrics=metrics,
                        )
                        # Archived days leave the hot table through retention's primitive,
                        # and a cleanup of a tenant with archival on goes through archival.
                        archive = ArchiveService(
                            pool, cold, settings.archive, access, deleter=retention.delete_events
                        )
                        retention.archive_first = archive.archive_and_remove
                        yield Services(
                            settings=settings,
                            pool=pool,
                            read_pool=read_pool,
                            metrics=metrics,
                            admission=ReadAdmission(settings.reads, metrics),
                            writer=writer,
                            rollups=folder,
                            access=access,
                            signing_key=key,
                            security=build_security(settings, pool, access, key),
                            ingest=Ingest(writer, lookup, settings.ingest, rules, metrics),
                            search=search,
                            tenants=TenantService(pool, access, rules, settings.ingest),
                            sealer=sealer,
                            witness=witness,
                            proofs=ProofService(
                                read_pool,
                                access,
                                sealer,
                                settings.integrity.seal_interval_seconds,
                                timeout_ms=settings.reads.statement_timeout_ms,
                                export_timeout_ms=settings.reads.export_statement_timeout_ms,
                            ),
                            checkpoint_verifier=checkpoint_signer.verifier,
                            streams=StreamService(
                                StreamHub(read_pool, PostgresAnnouncements(url), settings.stream),
                                read_pool,
                                access,
                                settings.stream,
                            ),
                            jobs=jobs,
                            retention=retention,
                            archive=archive,
                            backups=Backups(settings, url),
                            indexer=indexer,
                        )
                finally:
                    await queue.close()  # if a worker started it
                    if indexer is not None:
                        await indexer.index.close()
            finally:
                await folder.close()
                await writer.close()
        finally:
            await read_pool.close()
            await pool.close()


def _pool_sampler(
    metrics: Metrics, pools: dict[PoolName, AsyncConnectionPool[Connection]]
) -> Callable[[], None]:
    def sample() -> None:
        for name, pool in pools.items():
            stats = pool.get_stats()
            size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
            metrics.pool_size.labels(name).set(size)
            metrics.pool_in_use.labels(name).set(size - available)
            metrics.pool_waiting.labels(name).set(stats.get("requests_waiting", 0))

    return sample
