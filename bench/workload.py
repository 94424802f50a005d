"""Realistic request bodies for the ingest benchmarks (deterministic for a given seed)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ACTIONS = (
    ["VIEW"] * 50
    + ["UPDATE"] * 20
    + ["CREATE"] * 12
    + ["DELETE"] * 4
    + ["LOGIN"] * 8
    + ["LOGOUT"] * 5
    + ["EXPORT"]
)
RESOURCES = ["order", "invoice", "user", "product", "report", "project", "ticket"]
SEVERITIES = ["INFO"] * 90 + ["WARNING"] * 7 + ["ERROR"] * 2 + ["CRITICAL"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0",
    "billing-service/4.2 (+python-httpx/0.28)",
    "okhttp/4.12.0",
]


def _zipf_index(rng: random.Random, n: int, s: float = 1.2) -> int:
    """An index in [0, n) with Zipf-like skew: a few users and resources dominate."""
    return min(int(rng.paretovariate(s)) - 1, n - 1)


def event(rng: random.Random, now: datetime) -> dict[str, Any]:
    action = rng.choice(ACTIONS)
    user = f"user-{_zipf_index(rng, 5000):05d}"
    resource = rng.choice(RESOURCES)
    body: dict[str, Any] = {
        "timestamp": (now - timedelta(seconds=rng.random() * 60)).isoformat(),
        "user_id": user,
        "actor_type": "user",
        "session_id": f"sess-{rng.getrandbits(48):012x}",
        "action": action,
        "resource_type": resource,
        "resource_id": f"{resource}-{_zipf_index(rng, 100_000)}",
        "ip_address": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        "user_agent": rng.choice(AGENTS),
        "severity": rng.choice(SEVERITIES),
        "message": f"{user} {action.lower()}d {resource} from the web console",
        "request_id": f"req-{rng.getrandbits(64):016x}",
        "outcome": "success" if rng.random() < 0.97 else "failure",
        "metadata": {"region": rng.choice(["eu-west-1", "us-east-1"]), "plan": "pro",
                     "client": {"version": f"4.{rng.randrange(10)}", "os": "linux"}},
    }  # fmt: skip
    if action == "UPDATE":
        total = rng.randrange(10, 1000)
        body["before"] = {"status": "open", "total": total, "notes": "customer asked"}
        body["after"] = {"status": rng.choice(["open", "paid"]), "total": total + 5,
                         "notes": "customer asked"}  # fmt: skip
    return body


def write_bodies(path: Path, *, count: int, events_per_body: int, seed: int) -> Path:
    """*count* request bodies, one JSON document per line (single events or bulk batches)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    with path.open("w") as fh:
        for _ in range(count):
            if events_per_body == 1:
                doc: Any = event(rng, now)
            else:
                doc = {"events": [event(rng, now) for _ in range(events_per_body)]}
            fh.write(json.dumps(doc, separators=(",", ":")) + "\n")
    return path


def write_search_paths(path: Path, *, count: int, seed: int, tenant: str) -> Path:
    """*count* auditor requests over the last 24 hours, one path and query per line: the
    search mix of the search suite (tenant and window; + user; + action and resource; a
    full-text word) and statistics, in the proportions an auditor's screen sends them."""
    rng = random.Random(seed)
    start = (datetime.now(UTC) - timedelta(hours=24)).isoformat()
    with path.open("w") as fh:
        for _ in range(count):
            query: dict[str, str] = {"tenant_id": tenant, "start": start}
            kind = rng.randrange(5)
            if kind == 1:
                query["user_id"] = f"user-{_zipf_index(rng, 5000):05d}"
            elif kind == 2:
                query |= {"action": rng.choice(ACTIONS), "resource_type": rng.choice(RESOURCES)}
            elif kind == 3:
                query["q"] = rng.choice([*RESOURCES, "console", "web"])
            endpoint = "/api/v1/logs/stats" if kind == 4 else "/api/v1/logs"
            fh.write(f"{endpoint}?{urlencode(query)}\n")
    return path
