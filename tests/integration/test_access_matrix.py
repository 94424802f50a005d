"""The access matrix: every endpoint x every role and key scope x own / other / platform tenant.

Each row of ``ROWS`` is one endpoint with the exact status every principal gets on its own
tenant (the issue's table), and what a platform admin gets on the platform tenant. The other
columns follow from the rules and are asserted the same way:

* another tenant, a tenant that does not exist, or the platform tenant: 404 for everyone but
  a platform admin, with a body identical (ids aside) to the one for a missing tenant;
* another tenant's resource (event, key) addressed through one's own tenant: 403 if the
  action is not allowed at all, else 404 with a body identical to that of a random id.

And for every response to anyone but a platform admin: no other tenant's data (ids, names,
messages, key prefixes, subjects) in the body or any header. Endpoints that do not exist
yet (``requires``) are skipped, so the table can hold rows for endpoints still being built.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import psycopg
import pytest

from auditline.config import Settings
from tests.conftest import TokenFactory, bearer

PRINCIPALS = ("admin", "auditor", "user", "key:write", "key:read", "platform")
Resource = Literal["event", "user_event", "key", "job"] | None
Body = Callable[[str, int], Any]


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # {tenant} and {id} are filled in per target
    own: tuple[int, int, int, int, int, int]  # in PRINCIPALS order
    on_platform_log: int | None  # platform admin on the platform tenant; None: no tenant
    tenant_in: Literal["query", "body", "path", "none"] = "query"
    body: Body | None = None
    resource: Resource = None
    requires: str | None = None  # an OpenAPI path that must exist for the row to run
    query: tuple[tuple[str, str], ...] = ()  # query parameters besides the tenant

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}" + (f" [{self.resource}]" if self.resource else "")


def event_body(tenant: str, n: int) -> dict[str, Any]:
    return {"action": "MATRIX", "message": f"matrix {n}", "tenant_id": tenant}


ROWS = [
    #   method  path                              admin aud  user kw   kr   platform  platform-log
    Row("POST", "/api/v1/logs",                   (201, 403, 201, 201, 403, 201), 403,
        tenant_in="body", body=event_body),
    Row("POST", "/api/v1/logs/bulk",              (201, 403, 201, 201, 403, 201), 403,
        body=lambda t, n: {"events": [{"action": "MATRIX", "message": f"bulk {n}"}]}),
    Row("GET",  "/api/v1/logs/{id}",              (200, 200, 404, 403, 200, 200), 200,
        resource="event"),
    Row("GET",  "/api/v1/logs/{id}",              (200, 200, 200, 403, 200, 200), 200,
        resource="user_event"),
    Row("GET",  "/api/v1/logs",                   (200, 200, 200, 403, 200, 200), 200,
        requires="/api/v1/logs"),
    # totals, facets and highlights are part of the search: the same access
    Row("GET",  "/api/v1/logs",                   (200, 200, 200, 403, 200, 200), 200,
        requires="/api/v1/logs", query=(("facets", "action,user_id,severity"),
                                        ("highlight", "true"), ("include_total", "true"),
                                        ("q", "matrix"))),
    Row("GET",  "/api/v1/logs/export",            (200, 200, 403, 403, 200, 200), 200,
        requires="/api/v1/logs/export"),
    Row("GET",  "/api/v1/logs/stats",             (200, 200, 403, 403, 200, 200), 200,
        requires="/api/v1/logs/stats"),
    Row("WS",   "/api/v1/logs/stream",            (200, 200, 200, 403, 200, 200), 200),
    Row("GET",  "/api/v1/integrity/checkpoint",   (200, 200, 403, 403, 200, 200), 200),
    Row("GET",  "/api/v1/integrity/consistency",  (200, 200, 403, 403, 200, 200), 200,
        query=(("from", "1"), ("to", "2"))),
    Row("GET",  "/api/v1/logs/{id}/proof",        (200, 200, 403, 403, 200, 200), 200,
        resource="event"),
    Row("GET",  "/api/v1/tenants",                (200, 403, 403, 403, 403, 200), None,
        tenant_in="none"),
    Row("POST", "/api/v1/tenants",                (403, 403, 403, 403, 403, 201), None,
        tenant_in="none", body=lambda t, n: {"id": f"matrix-{n}", "name": "Matrix"}),
    Row("GET",  "/api/v1/tenants/{tenant}",       (200, 403, 403, 403, 403, 200), 200,
        tenant_in="path"),
    Row("PATCH", "/api/v1/tenants/{tenant}",      (200, 403, 403, 403, 403, 200), 200,
        tenant_in="path", body=lambda t, n: {"settings": {"matrix": n}}),
    Row("GET",  "/api/v1/api-keys",               (200, 403, 403, 403, 403, 200), 403),
    Row("POST", "/api/v1/api-keys",               (201, 403, 403, 403, 403, 201), 403,
        tenant_in="body",
        body=lambda t, n: {"name": f"matrix {n}", "scopes": ["logs:read"], "tenant_id": t}),
    Row("DELETE", "/api/v1/api-keys/{id}",        (204, 403, 403, 403, 403, 204), 403,
        resource="key"),
    Row("DELETE", "/api/v1/logs/cleanup",         (200, 403, 403, 403, 403, 200), 200),
    Row("GET",  "/api/v1/jobs",                   (200, 403, 403, 403, 403, 200), 200),
    Row("GET",  "/api/v1/jobs/{id}",              (200, 403, 403, 403, 403, 200), 200,
        resource="job"),
]  # fmt: skip


@dataclass
class World:
    http: httpx.AsyncClient
    tokens: dict[str, dict[str, str]]
    owners: dict[str, dict[str, str]]  # tenant -> admin headers, to create fresh resources
    events: dict[tuple[str, str], str]  # (tenant, kind) -> event id
    markers: set[str]  # other-tenant data that must never reach acme's principals
    counter: itertools.count[int]

    async def fresh_key(self, tenant: str) -> str:
        response = await self.http.post(
            "/api/v1/api-keys", json={"name": f"{tenant}-throwaway", "scopes": ["logs:read"]},
            headers=self.owners[tenant],
        )  # fmt: skip
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.rate_limits.enabled = False  # the matrix is about access, not budgets
    settings.integrity.seal_interval_seconds = 0.1
    return settings


async def build_world(
    http: httpx.AsyncClient, make_token: TokenFactory, database_url: str
) -> World:
    owners = {t: bearer(make_token("admin", t, sub=f"{t}-admin")) for t in ("acme", "globex")}

    async def post_event(tenant: str, **fields: Any) -> str:
        response = await http.post("/api/v1/logs", json={"action": "SEED", **fields},
                                   headers=owners[tenant])  # fmt: skip
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def key(tenant: str, scope: str, name: str) -> dict[str, Any]:
        response = await http.post("/api/v1/api-keys", json={"name": name, "scopes": [scope]},
                                   headers=owners[tenant])  # fmt: skip
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    # The secret: globex data no acme principal ever names, so it must never come back.
    secret = await post_event(
        "globex", user_id="globex-user", message="globex-confidential-message",
        resource_type="invoice", resource_id="globex-invoice-99",
    )  # fmt: skip
    # What acme principals probe with: their probes are recorded in their own log (the id
    # is their own input there), so this one cannot double as a marker.
    probe = await post_event("globex", user_id="globex-user", message="globex probe target")
    events = {
        ("acme", "event"): await post_event("acme", user_id="acme-someone", message="acme note"),
        ("acme", "user_event"): await post_event("acme", user_id="acme-user"),
        ("globex", "event"): probe,
        ("globex", "user_event"): probe,
    }
    acme_write = await key("acme", "logs:write", "acme-writer")
    acme_read = await key("acme", "logs:read", "acme-reader")
    globex_key = await key("globex", "logs:write", "globex-key-name")
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT id FROM events WHERE tenant_id = 'platform' LIMIT 1").fetchone()
    assert row is not None
    events[("platform", "event")] = events[("platform", "user_event")] = str(row[0])
    tokens = {
        "admin": owners["acme"],
        "auditor": bearer(make_token("auditor", "acme", sub="acme-auditor")),
        "user": bearer(make_token("user", "acme", sub="acme-user")),
        "key:write": bearer(acme_write["key"]),
        "key:read": bearer(acme_read["key"]),
        "platform": bearer(make_token("admin", "*", sub="root")),
    }
    await until_sealed(http, tokens, events)
    # Jobs (as the service submits them): one per tenant and one platform job to probe with,
    # and a globex job no acme principal ever names.
    hidden_job = uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        for owner in ("acme", "globex", None):
            job_id = uuid.uuid4()
            conn.execute("INSERT INTO jobs (id, tenant_id, kind) VALUES (%s, %s, %s)",
                         (job_id, owner, f"{owner or 'platform'}-matrix-kind"))  # fmt: skip
            events[(owner or "platform", "job")] = str(job_id)
        conn.execute(
            "INSERT INTO jobs (id, tenant_id, kind, error) VALUES "
            "(%s, 'globex', 'globex-secret-kind', 'globex-job-error')", (hidden_job,),
        )  # fmt: skip
    markers = {
        "Globex", "globex-admin", "globex-user", "globex-confidential-message",
        "globex-invoice-99", "globex-key-name", globex_key["id"], globex_key["prefix"],
        secret, str(hidden_job), "globex-secret-kind", "globex-job-error",
    }  # fmt: skip
    return World(http, tokens, owners, events, markers, itertools.count())


async def until_sealed(
    http: httpx.AsyncClient, tokens: dict[str, dict[str, str]], events: dict[tuple[str, str], str]
) -> None:
    """Wait for the sealer (every 0.1 s here) to cover the seeded events, so the proof rows
    have something to prove."""
    for (tenant, _), event_id in events.items():
        for _ in range(100):
            response = await http.get(
                f"/api/v1/logs/{event_id}/proof", params={"tenant_id": tenant},
                headers=tokens["platform"],
            )  # fmt: skip
            if response.status_code == 200:
                break
            assert response.status_code == 409, response.text
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"{tenant}'s event {event_id} was not sealed within 10 s")


Target = Literal["own", "other", "missing", "platform", "foreign", "absent"]
TENANT_OF: dict[Target, str] = {
    "own": "acme", "other": "globex", "missing": "initech", "platform": "platform",
    "foreign": "acme", "absent": "acme",
}  # fmt: skip


def expected(row: Row, principal: str, target: Target) -> int | None:
    """The status the rules demand, or None where this cell is not asserted."""
    own = row.own[PRINCIPALS.index(principal)]
    platform_admin = principal == "platform"
    if target == "own":
        return own
    if target in ("foreign", "absent"):
        return 403 if own == 403 else 404
    if not platform_admin:
        return 404
    if target == "other":
        return own
    if target == "platform":
        return row.on_platform_log
    return None  # a platform admin naming a tenant that does not exist: not a secret


async def resource_id(world: World, row: Row, target: Target) -> str | None:
    if row.resource is None:
        return None
    if target in ("missing", "absent") or (target == "platform" and row.resource == "key"):
        return str(uuid.uuid4())
    owner = "globex" if target in ("other", "foreign") else TENANT_OF[target]
    if row.resource == "key":
        return await world.fresh_key(owner)
    return world.events[(owner, row.resource)]


async def call(
    world: World, row: Row, principal: str, target: Target
) -> tuple[httpx.Response, str, str, str | None]:
    """The response, the request as text, and the tenant and resource id it named."""
    tenant = TENANT_OF[target]
    rid = await resource_id(world, row, target)
    path = row.path.replace("{tenant}", tenant).replace("{id}", rid or "")
    body = row.body(tenant, next(world.counter)) if row.body else None
    params = {"tenant_id": tenant} if row.tenant_in == "query" else {}
    params.update(row.query)
    if row.method == "WS":
        answer = await websocket_call(world.http, path, params, world.tokens[principal])
        return answer, f"{path} {params}", tenant, rid  # type: ignore[return-value]
    response = await world.http.request(
        row.method, path, params=params, json=body, headers=world.tokens[principal]
    )
    return response, f"{path} {params} {json.dumps(body)}", tenant, rid


@dataclass
class StreamAnswer:
    """What a WebSocket stream answered, in the matrix's terms: 200 once it is ``ready``,
    else the close code as the status it stands for (4403 -> 403), with the messages and
    the reason as the body."""

    status_code: int
    text: str
    headers: dict[str, str]


_CLOSE_STATUS = {4400: 400, 4401: 401, 4403: 403, 4404: 404, 4429: 429}


async def websocket_call(
    http: httpx.AsyncClient, path: str, params: dict[str, str], headers: dict[str, str]
) -> StreamAnswer:
    """Open the stream on the very app behind *http* (the ASGI WebSocket protocol spoken
    directly, as httpx cannot), read until ``ready`` or the close, then disconnect."""
    app = http._transport.app  # type: ignore[attr-defined]
    inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {
        "type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "ws",
        "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": urlencode(params).encode(), "subprotocols": [],
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000), "server": ("test", 80), "state": {},
    }  # fmt: skip
    await inbound.put({"type": "websocket.connect"})
    task = asyncio.create_task(app(scope, inbound.get, outbound.put))
    texts: list[str] = []
    status = None
    while status is None:
        if outbound.empty() and task.done():
            task.result()  # the app failed: show why
            raise AssertionError(
                f"the app ended without closing the stream: {texts} {path} {params} {headers}"
            )
        try:
            message = await asyncio.wait_for(outbound.get(), 0.1)
        except TimeoutError:
            continue
        if message["type"] == "websocket.send":
            texts.append(message["text"])
            if json.loads(message["text"])["type"] == "ready":
                status = 200
        elif message["type"] == "websocket.close":
            status = _CLOSE_STATUS.get(message["code"], message["code"])
            texts.append(message.get("reason") or "")
    await inbound.put({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(task, 10)
    return StreamAnswer(status, json.dumps(texts), {})


def normalised(response: httpx.Response, tenant: str, rid: str | None) -> dict[str, Any]:
    text = response.text.replace(tenant, "<tenant>")
    if rid:
        text = text.replace(rid, "<id>")
    loaded = json.loads(text)
    body: dict[str, Any] = loaded if isinstance(loaded, dict) else {"stream": loaded}
    body.pop("request_id", None)
    return body


def targets_for(row: Row) -> list[Target]:
    if row.tenant_in == "none":
        return ["own"]
    found: list[Target] = ["own", "other", "missing", "platform"]
    return found + (["foreign", "absent"] if row.resource else [])


@pytest.mark.usefixtures("tenants")
async def test_every_endpoint_for_every_principal_and_tenant(
    client: httpx.AsyncClient, make_token: TokenFactory, database_url: str
) -> None:
    world = await build_world(client, make_token, database_url)
    paths = set((await client.get("/openapi.json")).json()["paths"])
    rows = [r for r in ROWS if r.requires is None or r.requires in paths]
    skipped = [r.name for r in ROWS if r not in rows]
    failures: list[str] = []
    cells = 0
    for row, principal in itertools.product(rows, PRINCIPALS):
        baseline: dict[str, dict[str, Any]] = {}
        for target in targets_for(row):
            want = expected(row, principal, target)
            response, request_text, tenant, rid = await call(world, row, principal, target)
            cells += 1
            where = f"{row.name} as {principal} on {target}"
            if want is not None and response.status_code != want:
                failures.append(f"{where}: {response.status_code} != {want}: {response.text[:200]}")
            if principal != "platform":
                seen = (
                    response.text + " " + " ".join(f"{k}: {v}" for k, v in response.headers.items())
                )
                leaked = [m for m in world.markers if m in seen and m not in request_text]
                if leaked:
                    failures.append(f"{where}: leaked {leaked}")
            if response.status_code == 404 and principal != "platform":
                baseline[target] = normalised(response, tenant, rid)
        # Indistinguishable: another tenant (or the platform one) vs one that does not exist,
        # another tenant's resource vs a random id.
        for a, b in (("other", "missing"), ("platform", "missing"), ("foreign", "absent")):
            if a in baseline and b in baseline and baseline[a] != baseline[b]:
                failures.append(
                    f"{row.name} as {principal}: {a} {baseline[a]} != {b} {baseline[b]}"
                )
    assert not failures, f"{len(failures)} of {cells} cells wrong:\n" + "\n".join(failures)
    assert cells >= 250, (cells, skipped)
