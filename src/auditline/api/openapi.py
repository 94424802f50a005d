"""The OpenAPI document: FastAPI's, corrected where it would say what the server does not do.

Generated from the routes and models as FastAPI does, then, once per process:

* **Optional query and path parameters are not nullable.** A pydantic ``X | None = None``
  becomes ``anyOf: [X, {type: null}]``, but a parameter in a URL is absent or a string;
  there is no null to send, and a generator that tries spells it as a value the server
  refuses (``?start=null``).
* **Problem responses refer to one schema.** The error responses (``api.problems``) name
  ``#/components/schemas/Problem``, which is added here since no route returns it itself.
* **The limits are this server's.** Lengths of an event's text fields, events per bulk
  request and the depth of JSON fields are settings (``ingest.*``); the document states
  the configured ones (the depth and total size of JSON fields in their descriptions).

The contract test (``tests/contract``) runs schemathesis against the result.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from auditline.api.schemas import Problem, not_nullable
from auditline.config import IngestSettings

_PARAMETER_HOLDERS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def install_openapi(app: FastAPI, limits: IngestSettings) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            correct(document, limits)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def correct(document: dict[str, Any], limits: IngestSettings) -> None:
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in _PARAMETER_HOLDERS:
                for parameter in operation.get("parameters", []):
                    not_nullable(parameter.get("schema", {}))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    event = schemas["EventIn"]["properties"]
    lengths = {"message": limits.max_message_chars, "user_agent": limits.max_user_agent_chars}
    for name in ("user_id", "session_id", "resource_type", "resource_id", "request_id"):
        lengths[name] = limits.max_field_chars
    for name, most in lengths.items():
        for alternative in event[name].get("anyOf", [event[name]]):
            if alternative.get("type") == "string":
                alternative["maxLength"] = most
    schemas["BulkIn"]["properties"]["events"]["maxItems"] = limits.bulk_max_events
