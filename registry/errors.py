"""Errors that carry their HTTP status; one handler in the API renders them."""

from __future__ import annotations

from typing import Any


def error_envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The body of every error answer (the API's, the body limits', the CLI's --json): its
    one home. registry.api.errors.ErrorOut documents it in the OpenAPI document."""
    return {"error": {"code": code, "message": message, "details": details}}


class RegistryError(Exception):
    """An expected failure: rendered as {"error": {"code", "message", "details"}}."""

    status_code = 400
    code = "bad_request"
    headers: dict[str, str] | None = None  # e.g. Retry-After on a 429

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return error_envelope(self.code, self.message, self.details)


class BadRequest(RegistryError):
    status_code = 400
    code = "bad_request"


class Unauthorized(RegistryError):
    status_code = 401
    code = "unauthorized"


class Forbidden(RegistryError):
    status_code = 403
    code = "forbidden"


class NotFound(RegistryError):
    status_code = 404
    code = "not_found"


class Conflict(RegistryError):
    status_code = 409
    code = "conflict"


class PreconditionFailed(RegistryError):
    status_code = 412
    code = "precondition_failed"


class TooLarge(RegistryError):
    status_code = 413
    code = "too_large"


class Invalid(RegistryError):
    """Input that parsed but breaks a rule; `details` lists per-field problems."""

    status_code = 422
    code = "invalid"


class StorageError(RegistryError):
    status_code = 503
    code = "storage_unavailable"


class BlobNotFound(NotFound):
    code = "blob_not_found"


class BlobCorrupt(RegistryError):
    """Stored bytes no longer hash to their key."""

    status_code = 500
    code = "blob_corrupt"
