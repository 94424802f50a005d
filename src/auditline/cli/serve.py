"""``auditline serve`` (the API, with the embedded PostgreSQL unless a URL is configured)
and ``auditline migrate``."""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import signal
from typing import Any

from auditline.cli.common import settings_from
from auditline.metrics import prepare_multiprocess_dir
from auditline.runtime import data_dir_lock, database, signing_key, write_bootstrap_token
from auditline.storage.migrations import migrate


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser("serve", parents=[common], help="serve the API")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument(
        "--workers", type=int, default=None, help="API processes (default: one per CPU)"
    )
    serve.set_defaults(func=cmd_serve)

    migrate_cmd = sub.add_parser("migrate", parents=[common], help="apply schema migrations")
    migrate_cmd.set_defaults(func=cmd_migrate)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from auditline.app import SUPERVISOR_ENV, create_app

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
        workers = args.workers or settings.workers or default_workers()
        print(f"  API processes:   {workers}", flush=True)
        # Every API process writes its metrics to this directory, emptied now, so that a
        # scrape of any of them adds them all up (auditline.metrics).
        prepare_multiprocess_dir(settings.data_dir)
        if workers > 1:
            # Worker processes build their own app from the environment.
            os.environ["AUDITLINE_DATABASE__URL"] = url
            os.environ["AUDITLINE_DATA_DIR"] = str(settings.data_dir.resolve())
            os.environ[SUPERVISOR_ENV] = str(os.getpid())  # workers stop when serve dies
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
            # our own request log (one JSON line, with tenant and principal) replaces it
            access_log=not settings.metrics.request_log,
            log_config=log_config(),
        )
    return 0


def default_workers() -> int:
    """One API process per CPU this process may run on.

    Measured on two cores (docs/benchmarks/ingest-notes.md): two processes against one,
    2,456 against 1,215 single-event requests/s at c=128 and a p99 of 35.9 against
    110.7 ms at 1,000 events/s; the API's Python work holds one core per process (the GIL),
    and PostgreSQL's own processes share the same cores. Beyond the CPU count, processes
    only compete for them (and each adds its pools' connections).
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, plus ``auditline.requests`` (one JSON document per
    request, as it is) on standard error. uvicorn applies it in every API process it
    starts, which a configuration made here before it starts them would not reach."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["json_lines"] = {"format": "%(message)s"}
    config["handlers"]["requests"] = {
        "formatter": "json_lines",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["auditline.requests"] = {
        "handlers": ["requests"], "level": "INFO", "propagate": False,
    }  # fmt: skip
    return config


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with database(settings) as url:
        applied = asyncio.run(migrate(url, app_role=settings.database.app_role))
    print(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))
    return 0
