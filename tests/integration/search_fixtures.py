"""A small, hand-written data set for the search, export and statistics tests.

Every event has a name (``e0`` ...) mapped to a client-chosen id, so tests assert on
exact sets of events. All events lie in a three-hour window two days ago, so the access
records that searches write (timestamped now) stay out of windowed results.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

ACME_EVENTS: dict[str, dict[str, Any]] = {
    "e0": {
        "user_id": "alice", "actor_type": "user", "action": "LOGIN", "severity": "INFO",
        "resource_type": "user", "resource_id": "alice", "session_id": "s-1",
        "request_id": "r-1", "ip_address": "10.0.0.5", "outcome": "success",
        "message": "signed in from the office",
        "metadata": {"geo": {"country": "DE"}, "plan": "pro"},
    },
    "e1": {
        "user_id": "alice", "actor_type": "user", "action": "UPDATE", "severity": "WARNING",
        "resource_type": "invoice", "resource_id": "inv-1001", "session_id": "s-1",
        "request_id": "r-2", "ip_address": "10.0.0.5", "outcome": "success",
        "message": "changed the invoice total",
        "metadata": {"amount": 120, "tags": ["billing", "urgent"]},
        "before": {"total": 100}, "after": {"total": 120},
    },
    "e2": {
        "user_id": "bob", "actor_type": "user", "action": "READ", "severity": "INFO",
        "resource_type": "invoice", "resource_id": "inv-1002", "session_id": "s-2",
        "ip_address": "10.0.1.7", "outcome": "success", "message": "viewed an invoice",
        "metadata": {"geo": {"country": "FR"}, "amount": 80.5},
    },
    "e3": {
        "user_id": "bob", "actor_type": "user", "action": "DELETE", "severity": "ERROR",
        "resource_type": "document", "resource_id": "doc-9", "session_id": "s-2",
        "ip_address": "192.168.1.20", "outcome": "failure",
        "message": "delete refused: the document is locked",
        "metadata": {"reason": "locked"},
    },
    "e4": {
        "user_id": "carol", "actor_type": "user", "action": "EXPORT", "severity": "CRITICAL",
        "resource_type": "report", "resource_id": "rep-1", "outcome": "success",
        "message": "exported the payroll report", "metadata": {"rows": 5000},
    },
    "e5": {
        "user_id": "svc-billing", "actor_type": "service", "action": "CREATE",
        "severity": "INFO", "resource_type": "invoice", "resource_id": "inv-1003",
        "ip_address": "2001:db8::10", "outcome": "success",
        "message": "created an invoice from a subscription renewal",
        "metadata": {"plan": "enterprise", "flag": True},
    },
    "e6": {
        "actor_type": "system", "action": "SYNC_INVOICES", "severity": "INFO",
        "message": "nightly invoice synchronisation", "metadata": {"plan": "enterprise"},
    },
    "e7": {
        "user_id": "alice", "actor_type": "user", "action": "LOGOUT", "severity": "INFO",
        "session_id": "s-1", "message": "signed out", "metadata": {},
    },
}  # fmt: skip

GLOBEX_EVENTS: dict[str, dict[str, Any]] = {
    "g0": {
        "user_id": "alice", "action": "UPDATE", "severity": "WARNING",
        "resource_type": "invoice", "resource_id": "inv-1001",
        "message": "changed the invoice total", "metadata": {"plan": "pro"},
    },
    "g1": {
        "user_id": "bob", "action": "LOGIN", "severity": "ERROR",
        "message": "signed in from the office", "ip_address": "10.0.0.5",
    },
}  # fmt: skip


def base_time() -> datetime:
    """Two days ago, on the hour: inside the test partitions, far from 'now'."""
    now = datetime.now(UTC) - timedelta(days=2)
    return now.replace(minute=0, second=0, microsecond=0)


@dataclass
class DataSet:
    base: datetime
    ids: dict[str, uuid.UUID]
    times: dict[str, datetime]

    def names(self, events: list[dict[str, Any]]) -> list[str]:
        by_id = {str(v): k for k, v in self.ids.items()}
        return [by_id.get(e["id"], "?") for e in events]

    @property
    def window(self) -> dict[str, str]:
        return {
            "start": self.base.isoformat(),
            "end": (self.base + timedelta(hours=3)).isoformat(),
        }


async def load(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tenant: str,
    events: dict[str, dict[str, Any]],
    *,
    base: datetime | None = None,
    step: timedelta = timedelta(minutes=10),
) -> DataSet:
    """Store *events* in *tenant*, ``step`` apart from *base*, through the bulk API."""
    base = base or base_time()
    ids = {name: uuid.uuid4() for name in events}
    times = {name: base + i * step for i, name in enumerate(events)}
    body = {
        "events": [
            {**fields, "id": str(ids[name]), "timestamp": times[name].isoformat()}
            for name, fields in events.items()
        ]
    }
    response = await client.post(
        "/api/v1/logs/bulk", json=body, headers=headers, params={"tenant_id": tenant}
    )
    assert response.status_code == 201, response.text
    return DataSet(base=base, ids=ids, times=times)
