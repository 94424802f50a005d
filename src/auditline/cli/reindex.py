"""``auditline reindex``: index tenants' logs into OpenSearch again, from PostgreSQL.

Repairs an index that lost documents or kept removed ones, while ingest and searches go on
(``SearchIndexer.rebuild_tenant``: documents are overwritten in place). Needs
``AUDITLINE_OPENSEARCH__URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from auditline.cli.common import operator_tenant, settings_from, with_services
from auditline.services import Services


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "reindex", parents=[common], help="index tenants' logs into OpenSearch again"
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant", action="append", help="a tenant (repeatable)")
    which.add_argument("--all", action="store_true", help="every tenant")
    parser.set_defaults(func=cmd_reindex)


def cmd_reindex(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.opensearch.url is None:
        print("error: reindex needs AUDITLINE_OPENSEARCH__URL", file=sys.stderr)
        return 2

    async def run(services: Services) -> int:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        indexer = services.indexer
        if indexer is None:  # settings checked above; open_services made one
            return 2
        await indexer.index.ensure_template()
        if args.all:
            names = [t.id for t in await services.tenants.list()]
        else:
            names = list(dict.fromkeys(args.tenant))
        columns = (TextColumn("reindexing {task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, transient=False) as progress:
            for name in names:
                tenant = operator_tenant(name)
                task = progress.add_task(tenant, total=None)

                def report(done: int, total: int, task: Any = task) -> None:
                    progress.update(task, completed=done, total=total)

                done = await indexer.rebuild_tenant(tenant, on_batch=report)
                progress.update(task, completed=done.next_seq, total=done.next_seq)
                print(f"{tenant}: {done.indexed} events indexed, "
                      f"{done.removed_ranges} removed ranges deleted")  # fmt: skip
        return 0

    return asyncio.run(with_services(settings, run))
