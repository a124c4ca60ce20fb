"""The API's edge: path, query, headers and JSON bodies held to registry.input_rules.

One place for every route, present and future: a NUL character or a lone surrogate in
any string, JSON nested too deeply, or a repeated or unknown query parameter is a 422
naming the field before a route runs, instead of a DataError (500) from PostgreSQL, a
RecursionError in the parser, or a silently ignored typo.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from email.message import Message as MimeType
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.api.errors import invalid_response
from registry.api.openapi import answers
from registry.errors import Invalid
from registry.input_rules import JsonInputError, load_json, text_problem

BODYLESS_METHODS = {"GET", "HEAD", "OPTIONS"}


def _is_json(scope: Scope) -> bool:
    """FastAPI's own rule for parsing a body as JSON: no content type (on a method that has
    a body), application/json or application/*+json."""
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
    if content_type is None:
        return scope["method"] not in BODYLESS_METHODS
    mime = MimeType()
    mime["content-type"] = content_type.decode("latin-1")
    subtype = mime.get_content_subtype()
    return mime.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def url_problems(scope: Scope) -> list[dict]:
    """Text-rule problems in the (decoded) path, query parameters and header values, and
    query parameters given more than once (every one takes a single value: FastAPI would
    silently keep the last)."""
    fields = []
    problem = text_problem(scope["path"])
    if problem:
        fields.append({"field": "path", "message": problem})
    query = scope.get("query_string", b"").decode("latin-1")
    # Starlette decodes the query the same way, so this sees what the routes will see.
    pairs = parse_qsl(query, keep_blank_values=True)
    for name, value in pairs:
        problem = text_problem(name) or text_problem(value)
        if problem:
            fields.append({"field": f"query.{name}", "message": problem})
    for name, count in Counter(name for name, _ in pairs).items():
        if count > 1 and not text_problem(name):
            message = f"given {count} times; pass it once"
            fields.append({"field": f"query.{name}", "message": message})
    for name, value in scope["headers"]:
        if b"\x00" in value:
            message = "contains a NUL character, which a header may not contain"
            fields.append({"field": f"header.{name.decode('latin-1')}", "message": message})
    return fields


def body_problems(body: bytes) -> list[dict]:
    """Rule problems in a JSON body; syntax errors are left to FastAPI's own 422."""
    try:
        load_json(body)
    except JsonInputError as error:
        return [
            {"field": ".".join(p for p in ("body", field) if p), "message": message}
            for field, message in error.problems
        ]
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    return []


def _query_names(app: FastAPI, path: str, method: str) -> frozenset[str] | None:
    """The query parameters an operation takes, as its OpenAPI document states them; None
    for a route the document leaves out (/metrics: scrapers may add their own)."""
    if not hasattr(app.state, "query_names"):
        app.state.query_names = {}
    cache = app.state.query_names
    key = (path, method)
    if key not in cache:
        operation = app.openapi()["paths"].get(path, {}).get(method.lower())
        params = (operation or {}).get("parameters", [])
        names = frozenset(p["name"] for p in params if p["in"] == "query")
        cache[key] = names if operation is not None else None
    return cache[key]


@answers(422)
async def reject_unknown_query(request: Request) -> None:
    """An app-wide dependency: 422 for a query parameter the operation does not take, which
    FastAPI would ignore (`?user=alice` for `?user_id=alice` would list everyone's jobs)."""
    if not request.query_params:
        return
    route = request.scope["route"]
    method = "GET" if request.method == "HEAD" else request.method
    known = _query_names(request.app, route.path, method)
    if known is None:
        return
    unknown = [name for name in request.query_params if name not in known]
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise Invalid(
            f"unknown query parameter(s) {unknown}; this operation takes: {takes}",
            details=[{"field": f"query.{n}", "message": "unknown parameter"} for n in unknown],
        )


class InputGuardMiddleware:
    """Answers 422 for input that breaks registry.input_rules; bodies of paths `skip` names
    (streamed uploads, checked by their own validators) are not buffered here."""

    def __init__(self, app: ASGIApp, skip: Callable[[str], bool] = lambda path: False) -> None:
        self.app = app
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fields = url_problems(scope)
        if fields:
            await invalid_response(fields)(scope, receive, send)
            return
        if not _is_json(scope) or self.skip(scope["path"]):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        fields = body_problems(body) if body else []
        if fields:
            await invalid_response(fields)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
