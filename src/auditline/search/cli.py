"""``auditline export``: an operator's export of one tenant's log to a file.

Reads the database directly (``AUDITLINE_DATABASE__URL`` or the embedded server of
``--data-dir``) through the same search backend and file formats as
``GET /api/v1/logs/export``, shows a progress bar on stderr, writes to a temporary file
renamed into place only when complete, and records the export in the tenant's log (before
reading, and again with the count when done), like the API does.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from auditline.config import Settings
from auditline.domain.events import SEVERITIES, TenantId
from auditline.search.cursor import CursorCodec
from auditline.search.export import ExportFormat
from auditline.search.model import SearchQuery
from auditline.search.query import ParseError, parse
from auditline.search.service import SearchService


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``export`` subcommand to the ``auditline`` parser."""
    export = sub.add_parser(
        "export", parents=[common], help="export a tenant's audit events to a file",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )  # fmt: skip
    export.add_argument("--tenant", required=True, help="tenant id")
    export.add_argument("--format", choices=get_args(ExportFormat), default="csv")
    export.add_argument("--out", type=Path, required=True, help="output file ('-': stdout)")
    export.add_argument("--order", choices=("asc", "desc"), default="asc")
    export.add_argument("--start", help="inclusive, RFC 3339 with an offset")
    export.add_argument("--end", help="exclusive, RFC 3339 with an offset")
    export.add_argument("--user-id")
    export.add_argument("--session-id")
    export.add_argument("--action", action="append", default=[], help="repeatable")
    export.add_argument("--resource-type")
    export.add_argument("--resource-id")
    export.add_argument("--severity", action="append", default=[], choices=SEVERITIES)
    export.add_argument("--min-severity", choices=SEVERITIES)
    export.add_argument("--ip-address", help="address or CIDR network")
    export.add_argument("--request-id")
    export.add_argument("--outcome", choices=("success", "failure"))
    export.add_argument("--actor-type", choices=("user", "service", "system"))
    export.add_argument("-q", "--query", help="query language, as the API's q")
    export.add_argument("--no-progress", action="store_true", help="no progress bar")
    export.set_defaults(func=cmd_export)


def _query(args: argparse.Namespace) -> SearchQuery:
    from auditline.api.search_schemas import SearchParams

    raw = {
        "start": args.start, "end": args.end, "user_id": args.user_id,
        "session_id": args.session_id, "action": args.action,
        "resource_type": args.resource_type, "resource_id": args.resource_id,
        "severity": args.severity, "min_severity": args.min_severity,
        "ip_address": args.ip_address, "request_id": args.request_id,
        "outcome": args.outcome, "actor_type": args.actor_type,
    }  # fmt: skip
    params = SearchParams.model_validate({k: v for k, v in raw.items() if v not in (None, [])})
    return SearchQuery(filters=params.filters(), q=parse(args.query) if args.query else None)


def cmd_export(args: argparse.Namespace) -> int:
    from auditline.runtime import database

    settings = Settings()
    if args.data_dir is not None:
        settings.data_dir = args.data_dir
    try:
        query = _query(args)
    except ParseError as exc:
        print(f"error: --query: {exc}", file=sys.stderr)
        if args.query:
            print(f"  {args.query}\n  {' ' * exc.position}^", file=sys.stderr)
        return 2
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "filters"
            print(f"error: --{where.replace('_', '-')}: {error['msg']}", file=sys.stderr)
        return 2
    with database(settings) as url:
        return asyncio.run(_export(url, settings, TenantId(args.tenant), query, args))


async def _export(
    url: str, settings: Settings, tenant: TenantId, query: SearchQuery, args: argparse.Namespace
) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )  # fmt: skip

    from auditline.ingest.access import AccessRecorder
    from auditline.ingest.writer import EventWriter
    from auditline.search.postgres import PostgresSearch
    from auditline.storage.database import open_pool
    from auditline.storage.migrations import migrate
    from auditline.storage.tenants import get_tenant

    await migrate(url, app_role=settings.database.app_role)
    pool = await open_pool(url, settings.database.model_copy(update={"pool_min_size": 1}))
    writer = EventWriter(pool, group_commit=False)
    try:
        async with pool.connection() as conn:
            if await get_tenant(conn, tenant) is None:
                print(f"error: tenant '{tenant}' not found", file=sys.stderr)
                return 1
        await writer.start()
        access = AccessRecorder(writer, settings.ingest)
        backend = PostgresSearch(pool)
        actor = f"cli:{getpass.getuser()}"
        described = {"query": query.describe(), "format": args.format, "via": "cli"}
        total = None if args.no_progress else await backend.count(tenant, query)
        await access.record(
            tenant, actor=actor, actor_type="system", action="EXPORT",
            resource_type="audit_log", message="started an export of audit events",
            metadata={**described, "result_count": None, "phase": "started"},
        )  # fmt: skip
        columns = (
            TextColumn("exporting {task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(),
        )  # fmt: skip
        written = 0
        to_stdout = str(args.out) == "-"
        target: Path = args.out
        partial = target.with_name(target.name + ".partial")
        with Progress(*columns, disable=args.no_progress or total is None,
                      console=None, transient=False) as progress:  # fmt: skip
            task = progress.add_task(tenant, total=total)

            def advance(n: int) -> None:
                nonlocal written
                written += n
                progress.advance(task, n)

            service = SearchService(backend, CursorCodec(os.urandom(32)), settings.search)
            chunks = service.export_file(
                tenant, query, fmt=args.format, order=args.order, on_batch=advance
            )
            out = sys.stdout.buffer if to_stdout else partial.open("wb")
            try:
                async for chunk in chunks:
                    out.write(chunk)
            finally:
                if not to_stdout:
                    out.close()
        if not to_stdout:
            os.replace(partial, target)
        await access.record(
            tenant, actor=actor, actor_type="system", action="EXPORT",
            resource_type="audit_log", message="completed an export of audit events",
            metadata={**described, "result_count": written, "phase": "completed"},
        )  # fmt: skip
        if not to_stdout:
            print(f"exported {written} events of {tenant} to {target}", file=sys.stderr)
        return 0
    finally:
        await writer.close()
        await pool.close()
