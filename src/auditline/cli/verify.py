"""``auditline verify``: check a tenant's log against signed checkpoints.

``auditline verify FILE --key KEY`` checks an export made with ``include_proofs=true``
offline (no server, no database): the checkpoint's signature, every event's leaf hash and
every inclusion proof.

``auditline verify --tenant T`` checks the stored log on the database's machine.

Every row is hashed again, the tree rebuilt, and its root compared with every checkpoint
that verifies under the key: those in the database, the witness's (directory or S3), and
any the caller kept (``--since-checkpoint``, repeatable). Exit status 0 when everything
agrees, 1 with a report of what is wrong and where. The key defaults to the public half
of this server's checkpoint key; someone who does not trust the machine passes the key
they fetched earlier (``--key``, the verifier key string or a file holding it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from rich.progress import Progress

from auditline.cli.common import operator, operator_tenant, settings_from, with_services
from auditline.domain.access import ACCESS_RESOURCE
from auditline.evidence.offline import verify_export
from auditline.evidence.verify import Source, from_witness, verify_log
from auditline.integrity.note import Verifier, parse_verifier_key
from auditline.services import Services


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    verify = sub.add_parser("verify", parents=[common], help="verify an export or a stored log")
    verify.add_argument("file", nargs="?", type=Path, help="an export with include_proofs=true")
    verify.add_argument("--tenant", help="the tenant whose stored log to check")
    verify.add_argument(
        "--key", help="verifier key (`name+id+base64`) or a file holding it; default: this "
        "server's own checkpoint key"
    )  # fmt: skip
    verify.add_argument(
        "--since-checkpoint", type=Path, action="append", default=[], metavar="FILE",
        help="a checkpoint you kept earlier (signed note text); repeatable",
    )  # fmt: skip
    verify.set_defaults(func=cmd_verify)


def _verifier(value: str | None, services: Services) -> Verifier:
    if value is None:
        return services.checkpoint_verifier
    path = Path(value)
    text = path.read_text(encoding="utf-8") if path.is_file() else value
    return parse_verifier_key(text.strip())


def cmd_verify(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.tenant is None):
        print("error: give an export FILE or --tenant, not both", file=sys.stderr)
        return 2
    if args.file is not None:
        return _verify_file(args.file, args.key)
    settings = settings_from(args)
    tenant = operator_tenant(args.tenant)
    kept = [Source(str(p), p.read_text(encoding="utf-8")) for p in args.since_checkpoint]

    async def run(services: Services) -> int:
        try:
            verifier = _verifier(args.key, services)
        except ValueError as exc:
            print(f"error: not a verifier key: {exc}", file=sys.stderr)
            return 2
        witnessed = await from_witness(services.witness, tenant)
        with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task(f"verifying {tenant}", total=None)
            report = await verify_log(
                services.pool, tenant, verifier, settings.integrity.origin,
                extra_checkpoints=[*witnessed, *kept],
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
        await services.access.record(
            tenant, operator(), action="VERIFY", resource_type=ACCESS_RESOURCE,
            message="verified the log against its checkpoints",
            metadata={"leaves": report.leaves, "checkpoints": len(report.checkpoints),
                      "removed_ranges": len(report.removed),
                      "findings": len(report.findings), "via": "cli"},
            outcome="success" if report.ok else "failure",
        )  # fmt: skip
        print(f"tenant {tenant}: {report.leaves} events in sequence, log head {report.log_head}, "
              f"{len(report.checkpoints)} signed checkpoints checked")  # fmt: skip
        if report.removed:
            removed = sum(last - first + 1 for first, last in report.removed)
            print(f"{removed} of them removed by retention, cleanup or archival, each named by "
                  f"a removal record in the log ({len(report.removed)} ranges of seq)")  # fmt: skip
        for finding in report.findings:
            print(f"FAIL {finding}")
        print("OK" if report.ok else f"{len(report.findings)} problem(s) found")
        return 0 if report.ok else 1

    return asyncio.run(with_services(settings, run))


def _verify_file(path: Path, key: str | None) -> int:
    if key is None:
        print("error: verifying a file needs the server's public key: --key", file=sys.stderr)
        return 2
    try:
        text = Path(key).read_text(encoding="utf-8") if Path(key).is_file() else key
        verifier = parse_verifier_key(text.strip())
        report = verify_export(path.read_bytes(), verifier)
    except (OSError, ValueError) as exc:  # NotAProofExport is a ValueError too
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{path}: checkpoint {report.origin} size {report.tree_size}; {report.proven} events "
        f"proven, {len(report.unproven)} stored after it (unproven)"
    )
    for finding in report.findings:
        print(f"FAIL {finding}")
    print("OK" if report.ok else f"{len(report.findings)} problem(s) found")
    return 0 if report.ok else 1
