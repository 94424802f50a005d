"""``auditline token``: a JWT signed with the server's own key (for people and scripts)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from auditline.cli.common import settings_from
from auditline.runtime import signing_key
from auditline.security.principal import ALL_TENANTS, ROLES
from auditline.security.tokens import issue_token


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    token = sub.add_parser("token", parents=[common], help="print a signed JWT")
    token.add_argument("--tenant", action="append", required=True, help="tenant id, or '*'")
    token.add_argument("--role", choices=sorted(ROLES), required=True)
    token.add_argument("--sub", help="subject (the caller's user id)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(func=cmd_token)


def cmd_token(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    tenants = list(dict.fromkeys(args.tenant))
    if ALL_TENANTS in tenants and args.role != "admin":
        print("error: --tenant '*' is only for --role admin", file=sys.stderr)
        return 2
    sub = args.sub or (
        f"{args.role}@{tenants[0]}" if tenants != [ALL_TENANTS] else "platform-admin"
    )
    token = issue_token(
        signing_key(settings), settings.auth,
        subject=sub, role=args.role, tenants=tenants, ttl_seconds=args.ttl,
    )  # fmt: skip
    print(token)
    return 0
