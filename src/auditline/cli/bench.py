"""``auditline bench seed``: fill a database with realistic, skewed audit data
(``auditline.bench.seed``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from auditline.cli.common import settings_from, with_services
from auditline.services import Services


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``bench seed`` to the ``auditline`` parser."""
    bench = sub.add_parser("bench", help="benchmark tooling")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    seed = bench_sub.add_parser(
        "seed", parents=[common], help="write generated events (see auditline.bench.seed)"
    )
    seed.add_argument("--events", type=int, required=True)
    seed.add_argument("--tenants", type=int, default=100)
    seed.add_argument("--days", type=int, default=30, help="time span, ending now")
    seed.add_argument("--prefix", default="bench", help="tenant ids are <prefix>-NNN")
    seed.add_argument("--seed", type=int, default=42, help="random seed (deterministic)")
    seed.add_argument("--batch-size", type=int, default=5000)
    seed.add_argument("--no-progress", action="store_true")
    seed.set_defaults(func=cmd_seed)


def cmd_seed(args: argparse.Namespace) -> int:
    if args.events < 1 or args.tenants < 1 or args.days < 1:
        print("error: --events, --tenants and --days must be positive", file=sys.stderr)
        return 2
    return asyncio.run(with_services(settings_from(args), lambda s: _seed(s, args)))


async def _seed(services: Services, args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from auditline.bench.seed import seed

    columns = (TextColumn("seeding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=args.no_progress) as progress:
        task = progress.add_task("events", total=args.events)
        report = await seed(
            services.pool, events=args.events, tenants=args.tenants, days=args.days,
            prefix=args.prefix, seed_value=args.seed, batch_size=args.batch_size,
            progress=lambda n: progress.advance(task, n),
        )  # fmt: skip
    await services.rollups.fold_all()  # so that the benchmarks after it read folded counts
    largest = ", ".join(f"{t} {n}" for t, n in report.tenants[:3])
    print(
        f"wrote {report.events} events to {len(report.tenants)} tenants in "
        f"{report.seconds:.1f} s ({report.events / max(report.seconds, 1e-9):,.0f}/s); "
        f"largest: {largest}"
    )
    return 0
