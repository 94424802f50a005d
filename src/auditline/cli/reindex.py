"""``auditline reindex``: index tenants' logs into OpenSearch again, from PostgreSQL.

Two operations, both safe while ingest, the live indexer and searches go on (needs
``AUDITLINE_OPENSEARCH__URL``):

* ``--all``: build a new generation of indices with this version's template and mappings
  and delete the removed ranges from it, holding nothing; then, holding every tenant for
  a moment, catch up with what was committed and removed in the last moments and move
  the read alias in one request; drop the old generation (``SearchIndexer.rebuild_all``).
  This is how a mapping change is rolled out, and how a damaged index is replaced whole.
  The last line says what that moment handled.
* ``--tenant T`` (repeatable), or ``--all`` with ``--from``/``--to``: repair in place in
  the live generation (``SearchIndexer.rebuild_tenant``): the indices are shared by every
  tenant, so one tenant cannot get indices of its own without copying all the others;
  documents are overwritten by id, so searches never see fewer events meanwhile.
  ``--from``/``--to`` limit it to events of those UTC days (after ``archive restore``).
  Refused while a ``--all`` rebuild runs (it would write into the generation about to be
  retired): run it again afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from auditline.cli.common import operator_tenant, settings_from, with_services
from auditline.indexing.service import IndexRun, Rebuild, RebuildBusy
from auditline.services import Services


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "reindex", parents=[common], help="index tenants' logs into OpenSearch again"
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant", action="append", help="repair this tenant in place (repeatable)")
    which.add_argument(
        "--all", action="store_true",
        help="build a new generation of indices and swap the alias (with --from/--to: "
        "repair every tenant in place)",
    )  # fmt: skip
    parser.add_argument(
        "--from", dest="first", type=date.fromisoformat, help="first UTC day, YYYY-MM-DD"
    )
    parser.add_argument(
        "--to", dest="last", type=date.fromisoformat, help="last UTC day (included)"
    )
    parser.add_argument(
        "--grace-seconds", type=float, default=10.0,
        help="how long the old generation is kept after the swap (searches running on it "
        "finish)",
    )  # fmt: skip
    parser.set_defaults(func=cmd_reindex)


def _window(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(args.first, time(), UTC) if args.first else None
    end = datetime.combine(args.last + timedelta(days=1), time(), UTC) if args.last else None
    return start, end


def _count(n: int, noun: str) -> str:
    """*n* and *noun*, plural unless *n* is 1 (every noun here takes an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def rebuilt(built: Rebuild) -> str:
    """What ``reindex --all`` did, in one line; a first build replaced no generation. What
    the swap handled while it held every tenant (the live indexer skipped them meanwhile)
    is shown apart: small numbers there mean the index lag barely moved."""
    line = (
        f"generation {built.generation} is live ({_count(built.tenants, 'tenant')}, "
        f"{_count(built.removed_ranges, 'removed range')} deleted); the swap caught up "
        f"{_count(built.locked_events, 'event')} and "
        f"{_count(built.locked_ranges, 'removed range')}"
    )
    return f"{line}; generation {built.replaced} dropped" if built.replaced else line


def repaired(run: IndexRun) -> str:
    """What ``reindex --tenant`` (or ``--all`` with ``--from``/``--to``) did for one
    tenant, in one line."""
    return (
        f"{run.tenant}: {_count(run.indexed, 'event')} indexed, "
        f"{_count(run.removed_ranges, 'removed range')} deleted"
    )


def cmd_reindex(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.opensearch.url is None:
        print("error: reindex needs AUDITLINE_OPENSEARCH__URL", file=sys.stderr)
        return 2
    start, end = _window(args)
    if start is not None and end is not None and start >= end:
        print("error: --from is after --to", file=sys.stderr)
        return 2

    async def run(services: Services) -> int:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        indexer = services.indexer
        if indexer is None:  # settings checked above; open_services made one
            return 2
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, transient=False) as progress:
            if args.all and start is None and end is None:
                task = progress.add_task("building a new generation", total=None)

                def copied(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                try:
                    built = await indexer.rebuild_all(
                        on_progress=copied, grace_seconds=args.grace_seconds
                    )
                except RebuildBusy as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
                print(rebuilt(built))
                return 0
            if args.all:
                names = [t.id for t in await services.tenants.list()]
            else:
                names = list(dict.fromkeys(args.tenant))
            for name in names:
                tenant = operator_tenant(name)
                task = progress.add_task(f"reindexing {tenant}", total=None)

                def report(done: int, total: int, task: Any = task) -> None:
                    progress.update(task, completed=done, total=total)

                try:
                    done = await indexer.rebuild_tenant(
                        tenant, start=start, end=end, on_batch=report
                    )
                except RebuildBusy as exc:
                    print(f"error: {exc}; repair {tenant} once it is done", file=sys.stderr)
                    return 1
                progress.update(task, completed=done.next_seq, total=done.next_seq)
                print(repaired(done))
        return 0

    return asyncio.run(with_services(settings, run))
