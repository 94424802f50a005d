"""``auditline tenants``: create and list tenants, recorded exactly as the API records them."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import Any

from auditline.cli.common import operator, operator_tenant, settings_from, with_services
from auditline.domain.tenants import TENANT_ID_PATTERN, TenantExists
from auditline.services import Services


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    tenants = sub.add_parser("tenants", help="create or list tenants")
    tenants_sub = tenants.add_subparsers(dest="action", required=True)
    create = tenants_sub.add_parser("create", parents=[common], help="create a tenant")
    create.add_argument("id")
    create.add_argument("--name")
    create.add_argument("--retention-days", type=int, default=90)
    tenants_sub.add_parser("list", parents=[common], help="list tenants")
    tenants.set_defaults(func=cmd_tenants)


def cmd_tenants(args: argparse.Namespace) -> int:
    if args.action == "create" and not re.fullmatch(TENANT_ID_PATTERN, args.id):
        print("error: a tenant id is a lower-case slug of 1-63 characters", file=sys.stderr)
        return 2

    async def run(services: Services) -> int:
        if args.action == "create":
            try:
                tenant = await services.tenants.create(
                    operator_tenant(args.id), operator(), name=args.name or args.id,
                    retention_days=args.retention_days,
                )  # fmt: skip
            except TenantExists:
                print(f"error: tenant '{args.id}' already exists", file=sys.stderr)
                return 1
            print(f"created tenant {tenant.id}")
        else:
            for tenant in await services.tenants.list():
                print(json.dumps({"id": tenant.id, "name": tenant.name,
                                  "retention_days": tenant.retention_days}))  # fmt: skip
        return 0

    return asyncio.run(with_services(settings_from(args), run))
