"""Upkeep: event partitions exist before events need them.

Run at start-up (``services.open_services``) and as the scheduled task
``partitions.maintain`` (``auditline.tasks``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from auditline.config import Settings
from auditline.ingest.writer import EventWriter, months_from


async def ensure_partitions_ahead(writer: EventWriter, settings: Settings) -> None:
    """Partitions for last month through ``partition_months_ahead`` months from now."""
    start = datetime.now(UTC) - timedelta(days=31)
    await writer.ensure_partitions(months_from(start, settings.database.partition_months_ahead + 2))
