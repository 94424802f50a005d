"""``auditline archive``: list, verify, restore and export a tenant's archived days, or run
the archival now.

* ``list --tenant T [--from D] [--to D]``: the archived days with their row counts, ``seq``
  ranges and where they are;
* ``restore --tenant T --from D --to D``: put those days back into the hot log (same ids,
  ``seq`` and leaf hashes; idempotent: a second run inserts nothing);
* ``export --tenant T --from D --to D --out DIR``: copy the days' Parquet files and
  manifests, checked against their SHA-256, into DIR (the store's layout); for CSV or
  NDJSON, restore and use ``auditline export``;
* ``verify --tenant T [--from D] [--to D]``: read every file back and check it;
* ``run [--tenant T]``: archive what is due now (every tenant with ``archive_after_days``,
  or just T), as the scheduled task does.

Dates are UTC days, ``YYYY-MM-DD``, both ends included.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date
from pathlib import Path
from typing import Any

from auditline.cli.common import operator, operator_tenant, settings_from, with_services
from auditline.domain.tenants import UnknownTenant
from auditline.lifecycle.archive.manifest import Manifest
from auditline.lifecycle.archive.service import ArchiveConflict, ArchiveCorrupt
from auditline.services import Services


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``archive`` and its subcommands to the ``auditline`` parser."""
    archive = sub.add_parser("archive", help="archived events: list, restore, export, verify")
    commands = archive.add_subparsers(dest="archive_command", required=True)

    def command(name: str, help_: str, *, span: bool, required: bool) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, parents=[common], help=help_)
        parser.add_argument("--tenant", required=name != "run", help="tenant id")
        if span:
            parser.add_argument(
                "--from",
                dest="first",
                type=date.fromisoformat,
                required=required,
                help="first UTC day, YYYY-MM-DD",
            )
            parser.add_argument(
                "--to",
                dest="last",
                type=date.fromisoformat,
                required=required,
                help="last UTC day (included)",
            )
        return parser

    command("list", "list archived days", span=True, required=False).set_defaults(func=cmd_list)
    command("verify", "check archived files against their manifests", span=True,
            required=False).set_defaults(func=cmd_verify)  # fmt: skip
    command("restore", "put archived days back into the hot log", span=True,
            required=True).set_defaults(func=cmd_restore)  # fmt: skip
    export = command("export", "copy archived days' Parquet files out", span=True, required=True)
    export.add_argument("--out", type=Path, required=True, help="directory to write into")
    export.set_defaults(func=cmd_export)
    command("run", "archive what is due now", span=False, required=False).set_defaults(func=cmd_run)


def _run(args: argparse.Namespace, work: Any) -> int:
    if getattr(args, "first", None) and getattr(args, "last", None) and args.first > args.last:
        print("error: --from is after --to", file=sys.stderr)
        return 2

    async def guarded(services: Services) -> int:
        try:
            if args.tenant is not None:
                await services.tenants.get(operator_tenant(args.tenant))
            result: int = await work(services)
        except UnknownTenant:
            print(f"error: tenant '{args.tenant}' not found", file=sys.stderr)
            return 1
        except (ArchiveCorrupt, ArchiveConflict) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return result

    return asyncio.run(with_services(settings_from(args), guarded))


def cmd_list(args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        days = await services.archive.archived_days(
            operator_tenant(args.tenant), args.first, args.last
        )
        for row in days:
            m = Manifest.from_json(row.manifest)
            print(f"{m.day}  {m.rows:>10} events  seq {m.first_seq}-{m.last_seq}  "
                  f"{sum(f.bytes for f in m.files):>12} bytes  {row.location}")  # fmt: skip
        print(f"{len(days)} archived days", file=sys.stderr)
        return 0

    return _run(args, work)


def cmd_verify(args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        tenant = operator_tenant(args.tenant)
        days = await services.archive.archived_days(tenant, args.first, args.last)
        for row in days:
            await services.archive.verify(tenant, row.day)
        print(f"{len(days)} archived days verified", file=sys.stderr)
        return 0

    return _run(args, work)


def cmd_restore(args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        result = await services.archive.restore(
            operator_tenant(args.tenant), args.first, args.last, actor=operator()
        )
        print(f"restored {result.inserted} events of {result.days} archived days "
              f"({args.first} to {args.last}) into {args.tenant}")  # fmt: skip
        return 0

    return _run(args, work)


def cmd_export(args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        written = await services.archive.export(
            operator_tenant(args.tenant), args.first, args.last, args.out, actor=operator()
        )
        print(f"wrote {len(written)} files to {args.out}")
        return 0

    return _run(args, work)


def cmd_run(args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        if args.tenant is None:
            results = await services.archive.archive_due()
        else:
            tenant = operator_tenant(args.tenant)
            after = (await services.tenants.get(tenant)).archive_after_days
            if after is None:
                print(f"error: tenant '{tenant}' has no archive_after_days", file=sys.stderr)
                return 2
            results = await services.archive.archive_tenant(tenant, after, actor=operator())
        for r in results:
            print(f"{r.tenant} {r.day}: {r.archived} archived, {r.removed} removed from the "
                  f"hot table  {r.location}")  # fmt: skip
        print(f"{len(results)} days archived", file=sys.stderr)
        return 0

    return _run(args, work)
