"""The composition root: every service of a process, built from the settings in one place.

``open_services`` is the one start-up sequence. The API's lifespan, every CLI command and
(as it lands) the worker open it, use what it yields and leave it to close everything
again, in reverse order. Nothing else creates a pool, a writer or a service, so an operator's
command and an API request run the same code with the same guarantees: row-level security
checked, partitions ready, access and changes recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from auditline.config import Settings
from auditline.evidence.proofs import ProofService
from auditline.evidence.sealer import Sealer
from auditline.evidence.witness import DirectoryWitness
from auditline.ingest.access import AccessRecorder
from auditline.ingest.service import Ingest
from auditline.ingest.tenant_rules import TenantRules, database_loader
from auditline.ingest.writer import EventWriter
from auditline.integrity.note import Verifier
from auditline.integrity.signer import local_signer
from auditline.jobs.upkeep import ensure_partitions_ahead
from auditline.runtime import database, signing_key
from auditline.search.service import SearchService
from auditline.security.service import Security, build_security
from auditline.security.tokens import SigningKey
from auditline.storage.database import Connection, open_pool
from auditline.storage.migrations import migrate
from auditline.storage.rls import require_row_level_security
from auditline.storage.search.backend import postgres_search_service
from auditline.stream.announce import PostgresAnnouncements
from auditline.stream.hub import StreamHub
from auditline.stream.service import StreamService
from auditline.tenancy.service import TenantService


@dataclass(frozen=True)
class Services:
    """Everything requests, commands and jobs use; made and closed by :func:`open_services`."""

    settings: Settings
    pool: AsyncConnectionPool[Connection]
    writer: EventWriter
    access: AccessRecorder
    signing_key: SigningKey
    security: Security
    ingest: Ingest
    search: SearchService
    tenants: TenantService
    sealer: Sealer
    proofs: ProofService
    checkpoint_verifier: Verifier
    """The public half of the checkpoint key, published at /.well-known."""
    streams: StreamService
    """Live streams; its hub listens only once started (the API's lifespan does)."""


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Migrate, connect and build every service; close them all when the block ends.

    The database is ``settings.database.url``, or the data dir's embedded server (started
    if needed). Start-up refuses to go on if the application role could bypass row-level
    security (unless ``database.require_rls`` is off, for debugging).
    """
    with database(settings) as url:
        await migrate(url, app_role=settings.database.app_role)
        pool = await open_pool(url, settings.database)
        try:
            writer = EventWriter(
                pool,
                group_commit=settings.ingest.group_commit,
                max_group_events=settings.ingest.max_group_events,
            )
            await writer.start()
            try:
                await ensure_partitions_ahead(writer, settings)
                if settings.database.require_rls:
                    await require_row_level_security(pool)
                key = signing_key(settings)
                access = AccessRecorder(writer, settings.ingest)
                rules = TenantRules(
                    database_loader(pool), ttl_seconds=settings.ingest.masking_rules_ttl_seconds
                )
                search = postgres_search_service(pool, settings.search, key.private, access)
                checkpoint_signer, _ = local_signer(
                    settings.checkpoint_key_path, settings.integrity.origin
                )
                sealer = Sealer(
                    pool,
                    checkpoint_signer,
                    settings.integrity.origin,
                    DirectoryWitness(settings.witness_path),
                    max_leaves=settings.integrity.max_leaves_per_seal,
                )
                yield Services(
                    settings=settings,
                    pool=pool,
                    writer=writer,
                    access=access,
                    signing_key=key,
                    security=build_security(settings, pool, access, key),
                    ingest=Ingest(writer, search.events, settings.ingest, rules),
                    search=search,
                    tenants=TenantService(pool, access, rules, settings.ingest),
                    sealer=sealer,
                    proofs=ProofService(
                        pool, access, sealer, settings.integrity.seal_interval_seconds
                    ),
                    checkpoint_verifier=checkpoint_signer.verifier,
                    streams=StreamService(
                        StreamHub(pool, PostgresAnnouncements(url), settings.stream),
                        pool,
                        access,
                        settings.stream,
                    ),
                )
            finally:
                await writer.close()
        finally:
            await pool.close()
