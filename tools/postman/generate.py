"""Regenerate the Postman collection and environment in clients/postman/ from the OpenAPI
document of the code in this tree: ``make postman``. ``--check`` changes nothing and exits 1
when the committed files are stale (tests/clients/test_postman.py runs it).

openapi-to-postmanv2 (pinned in package.json, installed here by ``npm ci`` when the lock
file is newer than node_modules) converts the document; this script then makes the result
runnable as it stands, top to bottom, against a fresh server: requests in an order where each
finds what the ones before it made, a bearer ``{{token}}`` for all, ``{{tenant_id}}`` on every
tenant-scoped request, concrete bodies for the writes, ids captured from answers into
variables, and tests (no request may get a 5xx; the requests of that walk-through must
succeed). Generated ids are removed, so the output depends on the document alone.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "postman"
OUT = ROOT / "clients" / "postman"
COLLECTION = OUT / "auditline.postman_collection.json"
ENVIRONMENT = OUT / "auditline.postman_environment.json"
COLLECTION_ID = "6c0ad1a7-6a8e-4f0e-9f43-2d3b0b7c1a55"
ENVIRONMENT_ID = "0f4b8e52-0d1e-4b8a-a3f6-9a52c1d7e0b3"
NIL_UUID = "00000000-0000-0000-0000-000000000000"

EXAMPLE_EVENT = {
    "action": "UPDATE",
    "user_id": "alice",
    "actor_type": "user",
    "session_id": "s-81",
    "resource_type": "invoice",
    "resource_id": "inv-7",
    "ip_address": "203.0.113.9",
    "user_agent": "Postman",
    "before": {"total": 10, "status": "open"},
    "after": {"total": 12, "status": "open"},
    "metadata": {"reason": "customer call"},
    "severity": "INFO",
    "message": "invoice total corrected",
    "request_id": "req-19",
    "outcome": "success",
}


@dataclass
class Step:
    """How one operation is sent in the walk-through."""

    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    captures: dict[str, str] = field(default_factory=dict)  # variable -> answer's member
    before: list[str] = field(default_factory=list)  # pre-request script lines
    succeeds: bool = True


# The walk-through, in order; an operation not listed here (a new endpoint) is sent after
# these, and only has to answer without a server error.
WALK: dict[str, Step] = {
    "GET /healthz": Step(),
    "GET /readyz": Step(),
    "GET /api/v1/tenants": Step(),
    "POST /api/v1/tenants": Step(
        body={"id": "{{new_tenant_id}}", "name": "Created from Postman", "retention_days": 90},
        before=['pm.variables.set("new_tenant_id", "postman-" + Date.now().toString(36));'],
    ),
    "GET /api/v1/tenants/{tenant_id}": Step(),
    "PATCH /api/v1/tenants/{tenant_id}": Step(body={"retention_days": 90}),
    "POST /api/v1/logs": Step(body=EXAMPLE_EVENT, captures={"event_id": "id"}),
    "POST /api/v1/logs/bulk": Step(
        body={"events": [{"action": "LOGIN", "user_id": "u1"}, {"action": "LOGOUT"}]}
    ),
    "GET /api/v1/logs/{event_id}": Step(),
    "DELETE /api/v1/logs/cleanup": Step(query={"dry_run": "true"}),
    "GET /api/v1/logs": Step(query={"limit": "10", "user_id": "alice"}),
    "GET /api/v1/logs/export": Step(query={"format": "ndjson"}),
    "GET /api/v1/logs/stats": Step(query={"interval": "hour"}),
    "GET /api/v1/integrity/checkpoint": Step(succeeds=False),  # none until the first seal
    "GET /api/v1/logs/{event_id}/proof": Step(succeeds=False),  # 409 until sealed
    "GET /api/v1/integrity/consistency": Step(query={"from": "1", "to": "2"}, succeeds=False),
    "POST /api/v1/api-keys": Step(
        body={"name": "created-from-postman", "scopes": ["logs:read"]}, captures={"key_id": "id"}
    ),
    "GET /api/v1/api-keys": Step(),
    "DELETE /api/v1/api-keys/{key_id}": Step(),
    "GET /api/v1/jobs": Step(),
    "GET /api/v1/jobs/{job_id}": Step(succeeds=False),  # {{job_id}}: a job you know of
    "GET /.well-known/jwks.json": Step(),
    "GET /.well-known/auditline-checkpoint-key": Step(),
}

ENVIRONMENT_VALUES = [
    ("baseUrl", "http://127.0.0.1:8000", "default"),
    ("token", "", "secret"),  # a platform admin's token runs every request
    ("tenant_id", "acme", "default"),
    ("event_id", "", "default"),
    ("key_id", "", "default"),
    ("job_id", NIL_UUID, "default"),
]

NO_SERVER_ERROR = [
    'pm.test("no server error", function () {',
    "    pm.expect(pm.response.code).to.be.below(500);",
    "});",
]


def ensure_node_tools() -> Path:
    """The pinned npm packages, installed (``npm ci``) unless node_modules is current;
    returns their bin directory."""
    if shutil.which("npm") is None:
        raise SystemExit("Node.js (node and npm) is needed: https://nodejs.org")
    installed = TOOLS / "node_modules" / ".package-lock.json"
    lock = TOOLS / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=TOOLS, check=True
        )
    return TOOLS / "node_modules" / ".bin"


def openapi_document() -> dict[str, Any]:
    from auditline.app import create_app

    return create_app().openapi()


def convert(document: dict[str, Any]) -> dict[str, Any]:
    ensure_node_tools()
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "openapi.json"
        source.write_text(json.dumps(document))
        done = subprocess.run(
            ["node", str(TOOLS / "convert.cjs"), str(source)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def operation(request: dict[str, Any]) -> str:
    """``METHOD /path/{name}`` of a converted request (its path has ``:name`` variables)."""
    path = "/" + "/".join(re.sub(r"^:(.+)$", r"{\1}", p) for p in request["url"]["path"])
    return f"{request['method']} {path}"


def script(kind: str, lines: list[str]) -> dict[str, Any]:
    return {"listen": kind, "script": {"type": "text/javascript", "exec": lines}}


def shape_request(item: dict[str, Any]) -> None:
    request = item["request"]
    name = operation(request)
    if name not in WALK and request.get("body"):
        # The converter fakes bodies with random values: the output would change each run.
        raise SystemExit(f"{name} takes a body: give it one in WALK (tools/postman/generate.py)")
    step = WALK.get(name, Step(succeeds=False))
    # Saved example answers are faked with random values too; the OpenAPI document (/docs)
    # shows the answers' shapes.
    item["response"] = []
    url = request["url"]
    for variable in url.get("variable", []):
        variable["value"] = "{{" + variable["key"] + "}}"
    for parameter in url.get("query", []):
        key = parameter["key"]
        if key == "tenant_id":
            parameter["value"] = "{{tenant_id}}"
        elif key in step.query:
            parameter["value"] = step.query[key]
        parameter["disabled"] = key != "tenant_id" and key not in step.query
    sent = "&".join(f"{q['key']}={q['value']}" for q in url.get("query", []) if not q["disabled"])
    url["raw"] = "{{baseUrl}}/" + "/".join(url["path"]) + (f"?{sent}" if sent else "")
    if step.body is not None:
        request["body"] = {
            "mode": "raw",
            "raw": json.dumps(step.body, indent=2),
            "options": {"raw": {"language": "json"}},
        }
    if (request.get("auth") or {}).get("type") != "noauth":
        request.pop("auth", None)  # inherit the collection's bearer {{token}}
    events = []
    if step.before:
        events.append(script("prerequest", step.before))
    tests = []
    if step.succeeds:
        tests += [
            'pm.test("succeeds", function () {',
            "    pm.expect(pm.response.code).to.be.within(200, 299);",
            "});",
        ]
    for variable, member in step.captures.items():
        tests.append(f'pm.environment.set("{variable}", pm.response.json().{member});')
    if tests:
        events.append(script("test", tests))
    item["event"] = events


def strip_ids(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("id", None)
        for value in node.values():
            strip_ids(value)
    elif isinstance(node, list):
        for value in node:
            strip_ids(value)


def shape(raw: dict[str, Any]) -> dict[str, Any]:
    order = {name: i for i, name in enumerate(WALK)}

    def rank(item: dict[str, Any]) -> tuple[int, str]:
        if "request" in item:
            name = operation(item["request"])
            return order.get(name, len(order)), name
        return min((rank(child) for child in item["item"]), default=(len(order), ""))

    def walk(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in items:
            if "request" in item:
                shape_request(item)
            else:
                item["item"] = walk(item["item"])
        return sorted(items, key=rank)

    strip_ids(raw)
    raw["info"]["_postman_id"] = COLLECTION_ID
    raw["info"]["name"] = "Auditline"
    raw["info"]["description"] = (
        "Every endpoint of the Auditline API, generated from its OpenAPI document by "
        "tools/postman/generate.py. Run it top to bottom with the environment in this folder "
        "(baseUrl, a platform admin's token, tenant_id): each request finds what the ones "
        "before it made. docs/api.md describes the API."
    )
    raw["item"] = walk(raw["item"])
    bearer = [{"key": "token", "value": "{{token}}", "type": "string"}]
    raw["auth"] = {"type": "bearer", "bearer": bearer}
    raw["event"] = [script("test", NO_SERVER_ERROR)]
    raw.pop("variable", None)  # baseUrl and the rest come from the environment
    return raw


def environment() -> dict[str, Any]:
    return {
        "id": ENVIRONMENT_ID,
        "name": "Auditline (local)",
        "values": [
            {"key": key, "value": value, "type": kind, "enabled": True}
            for key, value, kind in ENVIRONMENT_VALUES
        ],
        "_postman_variable_scope": "environment",
    }


def dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    args = parser.parse_args(argv)
    wanted = {
        COLLECTION: dump(shape(convert(openapi_document()))),
        ENVIRONMENT: dump(environment()),
    }
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run make postman", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for path, text in wanted.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
