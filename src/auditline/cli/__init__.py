"""The ``auditline`` command: serve, worker, migrate, token, tenants, keys, export, archive,
backup, restore, bench, tail, verify, reindex.

Commands that need the database use ``AUDITLINE_DATABASE__URL`` when set, else the embedded
server of ``--data-dir`` (reusing the one a running ``auditline serve`` started). One module
per command group; each registers its subcommands and builds its services through
``cli.common.with_services`` (the composition root), so operator actions run, and are
recorded, exactly as their API counterparts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from auditline.cli import (
    archive,
    backup,
    bench,
    export,
    keys,
    reindex,
    serve,
    tail,
    tenants,
    tokens,
    verify,
    worker,
)
from auditline.runtime import DataDirBusy
from auditline.storage.embedded import EmbeddedPostgresError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, help="data directory (default ./.auditline)")
    for group in (
        serve,
        worker,
        tokens,
        tenants,
        keys,
        export,
        archive,
        backup,
        bench,
        verify,
        tail,
        reindex,
    ):
        group.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.func(args)
    except (DataDirBusy, EmbeddedPostgresError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return result
