"""``auditline backup`` and ``auditline restore`` (``auditline.lifecycle.backup``).

Both talk to the database directly, not through the composition root: a backup must not
change what it copies (no migrations, no partitions), and a restore needs an empty database
that ``open_services`` would fill with a schema first. The embedded server is started
through ``runtime.database`` exactly as every other command starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from auditline.cli.common import settings_from
from auditline.lifecycle.backup import BackupError, backup, file_conflicts, restore, verify
from auditline.runtime import DataDirBusy, database, server_running


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "backup", parents=[common], help="back up the database and the keys into a directory"
    )
    parser.add_argument("--out", type=Path, required=True, help="new or empty directory")
    parser.set_defaults(func=cmd_backup)
    parser = sub.add_parser(
        "restore", parents=[common], help="restore a backup into an empty data dir or database"
    )
    parser.add_argument("--from", dest="source", type=Path, required=True, help="a backup")
    parser.add_argument(
        "--force", action="store_true", help="replace a non-empty database and differing keys"
    )
    parser.add_argument(
        "--verify-only", action="store_true", help="check the backup's files and stop"
    )
    parser.set_defaults(func=cmd_restore)


def cmd_backup(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not settings.database.url and not (settings.data_dir / "postgres" / "PG_VERSION").exists():
        print(f"error: {settings.data_dir} holds no database to back up", file=sys.stderr)
        return 1
    try:
        with database(settings) as url:
            result = asyncio.run(backup(url, settings, args.out))
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    manifest = result.manifest
    print(
        f"backed up {manifest['events']} events of {len(manifest['events_by_tenant'])} "
        f"tenants and {len(manifest['files']) - 1} other files to {result.path} "
        f"({result.bytes / 1e6:.1f} MB in {result.seconds:.1f} s)"
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        # Everything that can refuse without touching the target comes first: the files of
        # the backup, the key files in place, a server using the data dir.
        manifest = verify(args.source)
        if args.verify_only:
            print(json.dumps({k: manifest[k] for k in ("created_at", "events", "schema_version")}))
            return 0
        conflicts = file_conflicts(args.source, settings, manifest)
        if conflicts and not args.force:
            print(
                "error: the target already has keys or archive files that differ from "
                f"the backup: {', '.join(conflicts)}; nothing was changed (--force replaces "
                "them)",
                file=sys.stderr,
            )
            return 1
        if not settings.database.url and server_running(settings.data_dir):
            raise DataDirBusy(
                f"an auditline server is using {settings.data_dir}; stop it before restoring"
            )
        with database(settings) as url:
            result = asyncio.run(restore(url, settings, args.source, force=args.force))
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in result.set_aside:
        print(f"kept the replaced {path.name.split('.replaced-')[0]} as {path}", file=sys.stderr)
    print(
        f"restored {result.manifest['events']} events of "
        f"{len(result.manifest['events_by_tenant'])} tenants from {args.source} "
        f"(backup of {result.manifest['created_at']}) in {result.seconds:.1f} s"
    )
    return 0
