"""The ``auditline`` command: serve, migrate, token, tenants.

Commands that need the database use ``AUDITLINE_DATABASE__URL`` when set, else the embedded
server of ``--data-dir`` (reusing the one a running ``auditline serve`` started).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from auditline.bench import cli as bench_cli
from auditline.config import Settings
from auditline.domain.events import TenantId
from auditline.runtime import DataDirBusy, data_dir_lock, database, signing_key
from auditline.runtime import write_bootstrap_token as _write_bootstrap_token
from auditline.search import cli as search_cli
from auditline.security.principal import ALL_TENANTS, ROLES
from auditline.security.tokens import issue_token
from auditline.storage.embedded import EmbeddedPostgresError
from auditline.storage.migrations import migrate


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "data_dir", None) is not None:
        settings.data_dir = args.data_dir
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from auditline.app import create_app

    settings = _settings(args)
    settings.host, settings.port = args.host or settings.host, args.port or settings.port
    with data_dir_lock(settings.data_dir), database(settings, owner=True) as url:
        settings.database.url = url
        token_path = _write_bootstrap_token(settings, signing_key(settings))
        print(f"Auditline serving http://{settings.host}:{settings.port}", flush=True)
        print(f"  API docs:        http://{settings.host}:{settings.port}/docs", flush=True)
        print(f"  admin token in:  {token_path.resolve()}", flush=True)
        # uvicorn shuts down gracefully on SIGTERM and then re-raises it; with this handler
        # the re-raised signal unwinds normally, so the embedded PostgreSQL is stopped too.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        workers = args.workers or settings.workers
        if workers > 1:
            # Worker processes build their own app from the environment.
            os.environ["AUDITLINE_DATABASE__URL"] = url
            os.environ["AUDITLINE_DATA_DIR"] = str(settings.data_dir.resolve())
        uvicorn.run(
            "auditline.app:create_app" if workers > 1 else create_app(settings),
            factory=workers > 1,
            workers=workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            loop="uvloop",
            http="httptools",
            timeout_graceful_shutdown=10,
            timeout_keep_alive=settings.http.timeout_keep_alive_seconds,
            limit_concurrency=settings.http.limit_concurrency,
            backlog=settings.http.backlog,
            forwarded_allow_ips=settings.http.forwarded_allow_ips,
        )
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with database(settings) as url:
        applied = asyncio.run(migrate(url, app_role=settings.database.app_role))
    print(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    settings = _settings(args)
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


def cmd_tenants(args: argparse.Namespace) -> int:
    from auditline.storage.database import open_pool
    from auditline.storage.tenants import TenantExists, create_tenant, list_tenants

    settings = _settings(args)

    async def run(url: str) -> int:
        await migrate(url, app_role=settings.database.app_role)
        pool = await open_pool(url, settings.database.model_copy(update={"pool_min_size": 1}))
        try:
            async with pool.connection() as conn:
                if args.action == "create":
                    try:
                        tenant = await create_tenant(
                            conn, TenantId(args.id), name=args.name or args.id,
                            retention_days=args.retention_days, archive_after_days=None,
                            settings={},
                        )  # fmt: skip
                    except TenantExists:
                        print(f"error: tenant '{args.id}' already exists", file=sys.stderr)
                        return 1
                    print(f"created tenant {tenant.id}")
                else:
                    for tenant in await list_tenants(conn):
                        print(json.dumps({"id": tenant.id, "name": tenant.name,
                                          "retention_days": tenant.retention_days}))  # fmt: skip
        finally:
            await pool.close()
        return 0

    with database(settings) as url:
        return asyncio.run(run(url))


def cmd_keys(args: argparse.Namespace) -> int:
    """API keys from the shell; the secret goes to stdout alone, so KEY=$(...) works."""
    import getpass
    from datetime import UTC, datetime, timedelta
    from uuid import UUID

    from auditline.ingest.access import AccessRecorder
    from auditline.ingest.writer import EventWriter
    from auditline.security.api_keys import ApiKeys
    from auditline.security.principal import PLATFORM_TENANT
    from auditline.storage.database import open_pool
    from auditline.storage.events import UnknownTenant

    settings = _settings(args)
    if args.tenant == PLATFORM_TENANT:
        print("error: the platform tenant takes no API keys", file=sys.stderr)
        return 2
    try:
        actor = f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        actor = "cli"

    async def run(url: str) -> int:
        await migrate(url, app_role=settings.database.app_role)
        pool = await open_pool(url, settings.database.model_copy(update={"pool_min_size": 1}))
        writer = EventWriter(pool, group_commit=False)
        try:
            await writer.start()
            keys = ApiKeys(pool, AccessRecorder(writer, settings.ingest), settings.api_keys)
            tenant = TenantId(args.tenant)
            if args.action == "create":
                expires = None
                if args.expires_in_days:
                    expires = datetime.now(UTC) + timedelta(days=args.expires_in_days)
                try:
                    stored, secret = await keys.create(
                        tenant, name=args.name, scopes=sorted(set(args.scope)),
                        expires_at=expires, actor=actor, actor_type="system",
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
                revoked = await keys.revoke(tenant, UUID(args.id), actor=actor, actor_type="system")
                if revoked is None:
                    print(f"error: no API key {args.id} in tenant {tenant}", file=sys.stderr)
                    return 1
                print(f"revoked API key {revoked.id} ({revoked.prefix})")
        finally:
            await writer.close()
            await pool.close()
        return 0

    with database(settings) as url:
        return asyncio.run(run(url))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, help="data directory (default ./.auditline)")

    serve = sub.add_parser("serve", parents=[common], help="serve the API")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=None, help="API processes (default 1)")
    serve.set_defaults(func=cmd_serve)

    migrate_cmd = sub.add_parser("migrate", parents=[common], help="apply schema migrations")
    migrate_cmd.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", parents=[common], help="print a signed JWT")
    token.add_argument("--tenant", action="append", required=True, help="tenant id, or '*'")
    token.add_argument("--role", choices=sorted(ROLES), required=True)
    token.add_argument("--sub", help="subject (the caller's user id)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(func=cmd_token)

    tenants = sub.add_parser("tenants", help="create or list tenants")
    tenants_sub = tenants.add_subparsers(dest="action", required=True)
    create = tenants_sub.add_parser("create", parents=[common], help="create a tenant")
    create.add_argument("id")
    create.add_argument("--name")
    create.add_argument("--retention-days", type=int, default=90)
    tenants_sub.add_parser("list", parents=[common], help="list tenants")
    tenants.set_defaults(func=cmd_tenants)

    from auditline.security.principal import SCOPES

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

    search_cli.register(sub, common)
    bench_cli.register(sub, common)
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
