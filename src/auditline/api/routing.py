"""A route class that lets pydantic read a JSON request body straight from its bytes.

FastAPI parses a JSON body with the standard ``json`` module and then validates the
Python objects; pydantic can validate the bytes in one pass instead. For a bulk request
the standard path took 5.7 ms per 1,000 events and the direct one 3.6 (measured in
isolation), a few per cent of what the service spends on a stored event.

Only the parsing changes, not what FastAPI does with its result: the request's ``json()``
hands FastAPI the validated model, which it accepts as it is (pydantic does not validate
an instance of the model again), so dependencies, their order and the OpenAPI document
stay FastAPI's own. A body the direct path refuses is read again strictly
(``api.jsonbody``): what breaks I-JSON (a repeated key, an unpaired surrogate) is refused
there with pointers, and any other document takes FastAPI's standard path, so every error
about the fields a client sees, and the order in which it sees them, is what it would be
without this class.

Every router with a JSON body uses this class, so every JSON body is read the same way,
and a body that is not JSON in UTF-8 is a 415 before anything else is looked at.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, serialize_response
from pydantic import BaseModel
from starlette.types import Receive, Scope

from auditline.api.deps import UNKNOWN_QUERY, get_principal, get_services, principal_of
from auditline.api.jsonbody import parse_body, read_body


class ModelBodyRoute(APIRoute):
    """An ``APIRoute`` whose JSON body, when it is one pydantic model, pydantic parses,
    which refuses query parameters it does not declare, and which calls a write route
    directly when FastAPI's dependency solving has nothing to decide.

    The unknown-query check was a router dependency: one more node for FastAPI to solve on
    every request (dependency solving was +22 us of the hardening's +75 us per single
    event, docs/benchmarks/ingest-notes.md). Here the declared names are worked out once per
    route, a request without a query string (nearly every ingest request) costs one dict
    lookup, and the refusal is raised by ``api.deps.get_principal`` once the caller is
    authenticated, so that a 401 still comes before the 422.

    The direct call (:meth:`_direct_call`) is for the ingest hot path: a request without a
    query string whose body pydantic accepted leaves FastAPI nothing to decide, yet its
    dependency solving and request handling cost about a fifth of a single event's API CPU
    (docs/benchmarks/ingest-notes.md). Every other request takes FastAPI's path.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        declared = declared_query(self.dependant)
        model = self.body_field.field_info.annotation if self.body_field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):

            async def handle_query(request: Request) -> Response:
                _note_unknown_query(request.scope, declared)
                return await handler(request)

            return handle_query
        body_model: type[BaseModel] = model
        direct = self._direct_call()

        async def handle(request: Request) -> Response:
            _note_unknown_query(request.scope, declared)
            body_request = _ModelBodyRequest(request.scope, request.receive, body_model)
            body = await body_request.read_document()
            if (
                direct is not None
                and isinstance(body, body_model)
                and not request.scope.get("query_string")
                and not request.app.dependency_overrides
            ):
                return await direct(body_request, body)
            return await handler(body_request)

        return handle

    def _direct_call(self) -> Callable[[Request, BaseModel], Awaitable[Response]] | None:
        """The endpoint called as FastAPI would call it for a request without a query
        string and with a valid body, or None when FastAPI would do more than that.

        It applies to an endpoint that takes the body, the principal and the services
        (``api.deps``), and optional query parameters, and whose answer is serialised in
        FastAPI's default way. Then, with no query string, FastAPI would authenticate
        (the principal's dependency, with its 401s and 429s), leave every query parameter
        at its default, call the endpoint and serialise its answer with
        ``serialize_response``: exactly what the returned function does, in that order,
        with FastAPI's own serialisation, so the two paths answer alike.
        """
        dependant = self.dependant
        solved = {dep.name: dep.call for dep in dependant.dependencies}
        optional = {q.name for q in dependant.query_params if not q.field_info.is_required()}
        body_name = dependant.body_params[0].name if len(dependant.body_params) == 1 else None
        if not (
            body_name is not None
            and inspect.iscoroutinefunction(self.endpoint)
            # nothing else to pass: no path, header or cookie parameter, no Request, no
            # required query parameter, no dependency but these two (a router's own
            # dependencies have no name)
            and set(inspect.signature(self.endpoint).parameters) == {body_name, *solved, *optional}
            and set(solved.values()) <= {get_principal, get_services}
            # FastAPI's default serialisation of a response model
            and self.response_field is not None
            and isinstance(self.response_class, DefaultPlaceholder)
            and self.response_model_include is None
            and self.response_model_exclude is None
            and self.response_model_by_alias
            and not self.response_model_exclude_unset
            and not self.response_model_exclude_defaults
            and not self.response_model_exclude_none
        ):
            return None
        endpoint = self.endpoint
        principal_name = next((n for n, c in solved.items() if c is get_principal), None)
        services_name = next((n for n, c in solved.items() if c is get_services), None)
        status_code, response_field = self.status_code, self.response_field

        async def call(request: Request, body: BaseModel) -> Response:
            values: dict[str, Any] = {body_name: body}
            if principal_name is not None or services_name is not None:
                services = await get_services(request)
                if principal_name is not None:
                    values[principal_name] = await principal_of(request, services)
                if services_name is not None:
                    values[services_name] = services
            answer = await endpoint(**values)
            if isinstance(answer, Response):
                return answer
            content = await serialize_response(
                field=response_field, response_content=answer, dump_json=True
            )
            return Response(content, status_code or 200, media_type="application/json")

        return call


def declared_query(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route (its dependencies included) declares."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= declared_query(sub)
    return frozenset(names)


def _note_unknown_query(scope: Scope, declared: frozenset[str]) -> None:
    """Leave the query parameters the route does not declare for ``get_principal`` to
    refuse (``UNKNOWN_QUERY`` in the request state), after authentication."""
    if not scope.get("query_string"):
        return
    unknown = [
        (name, value)
        for name, value in parse_qsl(scope["query_string"].decode("latin-1"), True)
        if name not in declared
    ]
    if unknown:
        scope.setdefault("state", {})[UNKNOWN_QUERY] = unknown


class _ModelBodyRequest(Request):
    def __init__(self, scope: Scope, receive: Receive, model: type[BaseModel]) -> None:
        super().__init__(scope, receive)
        self._body_model = model

    async def read_document(self) -> Any:
        """Parse the body before FastAPI asks for it (the validated model, or the document
        for FastAPI to validate; None when empty); raise what is wrong with it as JSON.

        Raised here, outside FastAPI's body reading (which would turn any exception but a
        ``JSONDecodeError`` into a bare 400), these reach the problem+json handlers as they
        are: 415 for a body that is not JSON in UTF-8, 422 with pointers for one that breaks
        I-JSON. An empty body is left to FastAPI ("Field required").
        """
        body = await self.body()
        if not body:
            return None
        refusal = _unreadable_media_type(self.headers.get("content-type"))
        if refusal is not None:
            raise HTTPException(415, refusal)
        self._json = read_body(self._body_model, body)
        return self._json

    async def json(self) -> Any:
        if not hasattr(self, "_json"):  # read_document parsed every body FastAPI reads; a guard
            self._json = parse_body(await self.body())
        return self._json


def _unreadable_media_type(content_type: str | None) -> str | None:
    """Why a body with this ``Content-Type`` is not one we read, or None if it is.

    JSON (``application/json``, or any ``application/*+json`` as FastAPI reads them) in
    UTF-8, the only encoding JSON has (RFC 8259): a ``charset`` parameter, which JSON does
    not define, may only say so. No content type, a form or text is refused, where FastAPI
    would answer that the body "should be a valid dictionary".
    """
    if not content_type:
        return "A JSON body needs Content-Type: application/json; nothing was stored."
    media_type, _, parameters = content_type.partition(";")
    main, _, sub = media_type.strip().lower().partition("/")
    if main != "application" or not (sub == "json" or sub.endswith("+json")):
        return "The body must be JSON (Content-Type: application/json); nothing was stored."
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return "JSON is read in UTF-8 only (RFC 8259); nothing was stored."
    return None
