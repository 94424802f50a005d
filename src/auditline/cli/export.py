"""``auditline export``: an operator's export of one tenant's log to a file.

Reads the database directly (``AUDITLINE_DATABASE__URL`` or the embedded server of
``--data-dir``) through the same search service as ``GET /api/v1/logs/export``, so the file
is the same and so are the two records of it in the tenant's log (started, completed with
the count; with ``via: cli``). Shows a progress bar on stderr and writes to a temporary
file renamed into place only when complete.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from auditline.cli.common import operator, operator_tenant, settings_from, with_services
from auditline.domain.events import SEVERITIES
from auditline.domain.tenants import TenantId, UnknownTenant
from auditline.search.export import ExportFormat
from auditline.search.model import SearchQuery
from auditline.search.query import ParseError, parse
from auditline.services import Services


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
    export.add_argument(
        "--include-access", action="store_true", help="also export the records of reads"
    )
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
    return SearchQuery(
        filters=params.filters(),
        q=parse(args.query) if args.query else None,
        include_access=args.include_access,
    )


def cmd_export(args: argparse.Namespace) -> int:
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
    tenant = operator_tenant(args.tenant)

    async def run(services: Services) -> int:
        try:
            await services.tenants.get(tenant)
        except UnknownTenant:
            print(f"error: tenant '{tenant}' not found", file=sys.stderr)
            return 1
        total = None if args.no_progress else await services.search.count(tenant, query)
        written = await _write(services, tenant, query, args, total)
        if str(args.out) != "-":
            print(f"exported {written} events of {tenant} to {args.out}", file=sys.stderr)
        return 0

    return asyncio.run(with_services(settings_from(args), run))


async def _write(
    services: Services,
    tenant: TenantId,
    query: SearchQuery,
    args: argparse.Namespace,
    total: int | None,
) -> int:
    """Write the file (to a ``.partial`` file renamed into place when complete); the count."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )  # fmt: skip

    columns = (
        TextColumn("exporting {task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    written = 0
    to_stdout = str(args.out) == "-"
    target: Path = args.out
    partial = target.with_name(target.name + ".partial")
    with Progress(*columns, disable=total is None, console=None, transient=False) as progress:
        task = progress.add_task(tenant, total=total)

        def advance(n: int) -> None:
            nonlocal written
            written += n
            progress.advance(task, n)

        chunks = await services.search.export(
            tenant, query, operator(), fmt=args.format, order=args.order, on_batch=advance,
            context={"via": "cli"},
        )  # fmt: skip
        out = sys.stdout.buffer if to_stdout else partial.open("wb")
        try:
            async for chunk in chunks:
                out.write(chunk)
        finally:
            if not to_stdout:
                out.close()
    if not to_stdout:
        os.replace(partial, target)
    return written
