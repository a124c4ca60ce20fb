"""One place that turns every failure into {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from registry.errors import RegistryError, error_envelope

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    code: str = Field(description="Machine-readable: branch on this, not on the message.")
    message: str = Field(description="What was wrong and how to fix it, for a person.")
    details: Any = Field(None, description="Structured context: for 422 one entry per field.")


class ErrorOut(BaseModel):
    """Every 4xx answer (and the 500 that would be a bug): `registry.errors.error_envelope`
    builds it; this model documents it (registry.api.openapi puts it on every route)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "not_found",
                        "message": "adapter 01J9Z3 not found",
                        "details": None,
                    }
                }
            ]
        }
    )

    error: ErrorBody


def error_response(
    status: int, code: str, message: str, details=None, headers: dict | None = None
) -> JSONResponse:
    body = error_envelope(code, message, details)
    return JSONResponse(body, status_code=status, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict]:
    fields = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        fields.append({"field": ".".join(loc), "message": err.get("msg", "invalid")})
    return fields


def invalid_response(fields: list[dict]) -> JSONResponse:
    """422 for input that breaks a rule, naming each field: the one shape for all of them."""
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
    return error_response(422, "invalid", f"invalid request: {summary}", fields)


def _allowed_methods(request: Request) -> str:
    """Every method the path takes: Starlette's 405 names only the first route that matched
    the path, though GET and POST on one path are two routes."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if getattr(route, "methods", None) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
CLIENT_CLOSED_REQUEST = 499


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RegistryError)
    async def _registry_error(_request: Request, exc: RegistryError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("registry error %s: %s", exc.code, exc.message)
        return error_response(
            exc.status_code, exc.code, exc.message, exc.details, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid_response(_field_errors(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        try:
            phrase = HTTPStatus(exc.status_code).phrase
        except ValueError:
            phrase = "error"
        code = _HTTP_CODES.get(exc.status_code) or phrase.lower().replace(" ", "_")
        message = exc.detail if isinstance(exc.detail, str) else phrase
        details = getattr(exc, "details", None)  # the body limits' (registry.api.middleware)
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(_request)}
        return error_response(exc.status_code, code, message, details, headers=headers)

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, _exc: ClientDisconnect) -> Response:
        # Nobody reads this answer. 499 (nginx's "client closed request") keeps client
        # aborts apart from server errors in the metrics.
        log.info("client disconnected during %s %s", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal", "internal error; see the server log")
