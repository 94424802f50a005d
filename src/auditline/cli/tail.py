"""``auditline tail``: follow a tenant's stream in a terminal, resuming by itself.

It connects to a running server's ``/api/v1/logs/stream`` with the same filters and ``q``
as a search, prints each event on one line coloured by severity (or as JSON with
``--json``), and when the connection drops (a network blip, a restart, ``lagged``, the
stream's lifetime) reconnects with ``since=`` the last cursor it printed: nothing is
missed and nothing is printed twice. Without ``--token`` (or ``AUDITLINE_TOKEN``) it signs
a short-lived auditor token with the data dir's key, as ``auditline token`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from typing import Any, Final
from urllib.parse import urlencode

import orjson
from rich.console import Console
from rich.markup import escape
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from auditline.cli.common import settings_from
from auditline.runtime import signing_key
from auditline.security.tokens import issue_token

_COLOURS: Final = {
    "INFO": "cyan",
    "WARNING": "yellow",
    "ERROR": "red",
    "CRITICAL": "bold white on red",
}
_FINAL: Final = frozenset({4400, 4401, 4403, 4404})
"""Close codes a reconnect cannot cure."""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    tail = sub.add_parser("tail", parents=[common], help="follow a tenant's events live")
    tail.add_argument("--tenant", required=True)
    tail.add_argument("-q", "--query", help="query language, as GET /api/v1/logs?q=")
    tail.add_argument("--action", action="append", default=[])
    tail.add_argument("--severity", action="append", default=[])
    tail.add_argument("--min-severity")
    for name in ("user-id", "session-id", "resource-type", "resource-id", "request-id",
                 "outcome", "actor-type", "ip-address"):  # fmt: skip
        tail.add_argument(f"--{name}")
    tail.add_argument("--include-access", action="store_true", help="also the service's reads")
    tail.add_argument("--since", help="start after this cursor (-1: the whole log)")
    tail.add_argument("--url", help="server URL (default http://<host>:<port> of the settings)")
    tail.add_argument("--token", default=os.environ.get("AUDITLINE_TOKEN"))
    tail.add_argument("--json", action="store_true", help="one JSON event per line")
    tail.add_argument("--count", type=int, help="stop after this many events")
    tail.set_defaults(func=cmd_tail)


def cmd_tail(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_tail(args))
    return 0


def _params(args: argparse.Namespace) -> list[tuple[str, str]]:
    pairs = [("tenant_id", args.tenant)]
    pairs += [("action", a) for a in args.action] + [("severity", s) for s in args.severity]
    for name in ("min_severity", "user_id", "session_id", "resource_type", "resource_id",
                 "request_id", "outcome", "actor_type", "ip_address"):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            pairs.append((name, value))
    if args.query is not None:
        pairs.append(("q", args.query))
    if args.include_access:
        pairs.append(("include_access", "true"))
    return pairs


def _token(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token)
    settings = settings_from(args)
    return issue_token(
        signing_key(settings), settings.auth, subject=f"cli:tail:{os.getuid()}",
        role="auditor", tenants=[args.tenant], ttl_seconds=12 * 3600,
    )  # fmt: skip


async def _tail(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    base = (args.url or f"http://{settings.host}:{settings.port}").rstrip("/")
    ws_base = "ws" + base.removeprefix("http")
    console = Console(highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False)
    cursor: str | None = args.since
    printed, delay = 0, 0.2
    while True:
        pairs = _params(args) + ([("since", cursor)] if cursor is not None else [])
        url = f"{ws_base}/api/v1/logs/stream?{urlencode(pairs)}"
        try:
            async with connect(url, additional_headers={"Authorization": f"Bearer {_token(args)}"},
                               max_size=2**24) as ws:  # fmt: skip
                async for raw in ws:
                    message = orjson.loads(raw)
                    kind = message["type"]
                    if kind == "event":
                        _print(console, message["data"], as_json=args.json)
                        cursor = message["cursor"]
                        printed += 1
                        delay = 0.2
                        if args.count is not None and printed >= args.count:
                            return 0
                    elif kind == "ready" and cursor is None:
                        cursor = message["cursor"]
                    elif kind == "error":
                        errors.print(f"[red]error {message['code']}: {escape(message['detail'])}")
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            if code in _FINAL:
                return 1
            errors.print(f"[dim]disconnected ({code}); resuming after cursor {cursor}")
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            errors.print(f"[dim]cannot connect ({exc}); retrying")
        except InvalidURI as exc:
            errors.print(f"[red]error: {exc}")
            return 2
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


def _print(console: Console, event: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(event).decode() + "\n")
        sys.stdout.flush()
        return
    severity = event.get("severity") or "INFO"
    resource = "/".join(x for x in (event.get("resource_type"), event.get("resource_id")) if x)
    parts = [event["timestamp"], f"{severity:<8}", event["action"], event.get("user_id") or "-",
             resource or "-", event.get("message") or ""]  # fmt: skip
    console.print(f"[{_COLOURS.get(severity, 'white')}]{escape(' '.join(parts))}")
