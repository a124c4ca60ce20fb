"""The OpenAPI document states, per operation, the errors it can answer, in our envelope.

Derived when the document is built, from what each route is made of, so that a route added
later is documented the same way: its dependencies say what they refuse (`answers`), a path
id means 404, a body 408, 413 and 422 (and 400 when it must parse as JSON), a cursor 400,
any parameter 422. What only a route's own code
knows (a 409 from its service) it declares in `responses={409: {"description": ...}}`;
every error status, however declared, gets the `ErrorOut` schema. FastAPI's
`HTTPValidationError` (`{"detail": [...]}`) is replaced: our 422 is the envelope too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from registry.api.errors import ErrorOut

ERROR_DESCRIPTIONS = {
    400: "Malformed input no schema can state: a cursor not issued by us, a bad header.",
    401: "No API key, or one that is unknown or revoked (`Authorization: Bearer <key>`).",
    403: "The key lacks the scope this operation needs (`error.details.required`).",
    404: "No such object in this tenant (another tenant's objects are not found either).",
    408: "The request body arrived too slowly (VERA_UPLOAD_TIMEOUT_S, *_IDLE_TIMEOUT_S).",
    409: "Conflicts with the current state: see `error.code`.",
    412: "A precondition (`If-Match`, `If-None-Match`) does not hold.",
    413: "The body (or the tenant's stored bytes, a quota) is over its limit.",
    416: "The `Range` lies outside the file.",
    422: "Input that breaks a rule: `error.details` lists each field and what is wrong.",
    429: "Over the key's request rate: retry after `Retry-After` seconds.",
}
_REF_TEMPLATE = "#/components/schemas/{model}"
_SCHEMA_REF = _REF_TEMPLATE.format(model=ErrorOut.__name__)
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
F = TypeVar("F", bound=Callable[..., Any])


def answers(*statuses: int) -> Callable[[F], F]:
    """Marks a dependency with the error statuses it answers, for every route that uses it."""

    def mark(call: F) -> F:
        call.error_statuses = frozenset(statuses)  # type: ignore[attr-defined]
        return call

    return mark


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def api_routes(routes: list) -> Iterator[APIRoute]:
    """The app's operations as the OpenAPI document sees them: with the prefixes and
    dependencies of the routers that include them (FastAPI >= 0.160 includes routers
    lazily; before, `app.routes` held them ready)."""
    contexts = getattr(routing, "iter_route_contexts", None)
    for route in contexts(routes) if contexts else routes:
        original = getattr(route, "original_route", route)
        if isinstance(original, APIRoute) and route.include_in_schema:
            yield route


def error_statuses(route: APIRoute) -> set[int]:
    """Every 4xx status the route can answer, by what it is made of and what it declares."""
    statuses: set[int] = set()
    path, query, header = set(), set(), set()
    for dependant in _dependants(route.dependant):
        statuses |= getattr(dependant.call, "error_statuses", frozenset())
        path |= {param.alias for param in dependant.path_params}
        query |= {param.alias for param in dependant.query_params}
        header |= {param.alias for param in dependant.header_params}
    if path:
        statuses.add(404)
    if route.body_field is not None:
        statuses.add(400)  # JSON that does not parse
    if route.body_field is not None or "requestBody" in (route.openapi_extra or {}):
        statuses |= {408, 413, 422}
    if "cursor" in query:
        statuses.add(400)
    if path or query or header:
        statuses.add(422)
    statuses |= {int(s) for s in route.responses if str(s).isdigit() and 400 <= int(s) < 500}
    return statuses


def _error_response(existing: dict | None, status: int) -> dict:
    """The route's own description where it gave one (it says when), ours otherwise; always
    our envelope, never FastAPI's `{"detail": [...]}`."""
    description = (existing or {}).get("description")
    if not description or description == "Validation Error":
        description = ERROR_DESCRIPTIONS.get(status, "See `error.code`.")
    return {
        **(existing or {}),
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _SCHEMA_REF}}},
    }


def restore_example_nulls(schema: dict, routes: list) -> None:
    """FastAPI drops every null from the document, those in examples too, which leaves
    examples that break their own schema (`"revoked_at": null` is required): put the
    models' examples back as written."""
    annotations = []
    for route in api_routes(routes):
        fields = [route.body_field, route.response_field, *route.response_fields.values()]
        annotations += [f.field_info.annotation for f in fields if f is not None]
    if not annotations:
        return
    written = TypeAdapter(tuple[tuple(annotations)]).json_schema(ref_template=_REF_TEMPLATE)
    components = schema.get("components", {}).get("schemas", {})
    for name, definition in written.get("$defs", {}).items():
        if "examples" in definition and "examples" in components.get(name, {}):
            components[name]["examples"] = definition["examples"]


def document_errors(schema: dict, routes: list) -> dict:
    """Puts the error responses of each route into `schema` (FastAPI's document)."""
    for route in api_routes(routes):
        statuses = error_statuses(route)
        for method in route.methods:
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation["responses"]
            for status in statuses:
                responses[str(status)] = _error_response(responses.get(str(status)), status)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)
    defs = ErrorOut.model_json_schema(ref_template=_REF_TEMPLATE)
    components.update(defs.pop("$defs", {}))
    components[ErrorOut.__name__] = defs
    return schema


def install_openapi(app: FastAPI) -> None:
    """Completes FastAPI's document on first use, when every router is included."""
    build = app.openapi
    documented: list[int] = []  # id() of the document last completed here

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI's, rebuilt when a route was added since
        if documented != [id(schema)]:
            restore_example_nulls(schema, app.routes)
            documented[:] = [id(document_errors(schema, app.routes))]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
