"""``auditline keys``: API keys from the shell; the secret goes to stdout alone, so
``KEY=$(auditline keys create ...)`` works. Recorded exactly as the API records them."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from auditline.cli.common import operator, operator_tenant, settings_from, with_services
from auditline.domain.tenants import PLATFORM_TENANT, UnknownTenant
from auditline.security.principal import SCOPES
from auditline.services import Services


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    keys = sub.add_parser("keys", help="create, list or revoke API keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    key_create = keys_sub.add_parser("create", parents=[common], help="create an API key")
    key_create.add_argument("--tenant", required=True)
    key_create.add_argument("--scope", action="append", required=True, choices=sorted(SCOPES))
    key_create.add_argument("--name", default="cli", help="what the key is for")
    key_create.add_argument("--expires-in-days", type=int, default=None)
    key_list = keys_sub.add_parser("list", parents=[common], help="list a tenant's API keys")
    key_list.add_argument("--tenant", required=True)
    key_revoke = keys_sub.add_parser("revoke", parents=[common], help="revoke an API key")
    key_revoke.add_argument("--tenant", required=True)
    key_revoke.add_argument("id")
    keys.set_defaults(func=cmd_keys)


def cmd_keys(args: argparse.Namespace) -> int:
    if args.tenant == PLATFORM_TENANT:
        print("error: the platform tenant takes no API keys", file=sys.stderr)
        return 2
    tenant, actor = operator_tenant(args.tenant), operator()

    async def run(services: Services) -> int:
        keys = services.security.api_keys
        if args.action == "create":
            expires = None
            if args.expires_in_days:
                expires = datetime.now(UTC) + timedelta(days=args.expires_in_days)
            try:
                stored, secret = await keys.create(
                    tenant, name=args.name, scopes=sorted(set(args.scope)), expires_at=expires,
                    actor=actor,
                )  # fmt: skip
            except UnknownTenant:
                print(f"error: no tenant '{args.tenant}'", file=sys.stderr)
                return 1
            print(secret)
            print(f"created API key {stored.id} ({stored.prefix}) for tenant {tenant} "
                  f"with {', '.join(stored.scopes)}; the key is shown only once",
                  file=sys.stderr)  # fmt: skip
        elif args.action == "list":
            for key in await keys.list(tenant):
                print(json.dumps({"id": str(key.id), "prefix": key.prefix, "name": key.name,
                                  "scopes": key.scopes, "revoked": key.revoked_at is not None,
                                  }))  # fmt: skip
        else:
            revoked = await keys.revoke(tenant, UUID(args.id), actor=actor)
            if revoked is None:
                print(f"error: no API key {args.id} in tenant {tenant}", file=sys.stderr)
                return 1
            print(f"revoked API key {revoked.id} ({revoked.prefix})")
        return 0

    return asyncio.run(with_services(settings_from(args), run))
