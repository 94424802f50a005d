"""Periodic upkeep of one process: event partitions exist before events need them."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from auditline.config import Settings
from auditline.ingest.writer import EventWriter, months_from

log = logging.getLogger(__name__)


async def ensure_partitions_ahead(writer: EventWriter, settings: Settings) -> None:
    """Partitions for last month through ``partition_months_ahead`` months from now."""
    start = datetime.now(UTC) - timedelta(days=31)
    await writer.ensure_partitions(months_from(start, settings.database.partition_months_ahead + 2))


async def maintain_partitions(writer: EventWriter, settings: Settings) -> None:
    """:func:`ensure_partitions_ahead` every ``maintenance_interval_seconds`` until cancelled.

    Failures are logged and retried next round.
    """
    while True:
        await asyncio.sleep(settings.maintenance_interval_seconds)
        try:
            await ensure_partitions_ahead(writer, settings)
        except Exception:
            log.exception("partition maintenance failed; retrying next round")
