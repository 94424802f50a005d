"""``auditline serve`` (the API, with the embedded PostgreSQL unless a URL is configured)
and ``auditline migrate``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

from auditline.cli.common import settings_from
from auditline.runtime import data_dir_lock, database, signing_key, write_bootstrap_token
from auditline.storage.migrations import migrate


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser("serve", parents=[common], help="serve the API")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=None, help="API processes (default 1)")
    serve.set_defaults(func=cmd_serve)

    migrate_cmd = sub.add_parser("migrate", parents=[common], help="apply schema migrations")
    migrate_cmd.set_defaults(func=cmd_migrate)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from auditline.app import create_app

    settings = settings_from(args)
    settings.host, settings.port = args.host or settings.host, args.port or settings.port
    with data_dir_lock(settings.data_dir), database(settings, owner=True) as url:
        settings.database.url = url
        token_path = write_bootstrap_token(settings, signing_key(settings))
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
            ws_per_message_deflate=settings.stream.compress,
        )
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with database(settings) as url:
        applied = asyncio.run(migrate(url, app_role=settings.database.app_role))
    print(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))
    return 0
