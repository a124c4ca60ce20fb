"""API keys of the caller's tenant (admin scope)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from registry.api.deps import AdminDep, SessionDep
from registry.api.pagination import (
    DEFAULT_LIMIT,
    ByCreatedAt,
    Limit,
    Page,
    created_key,
    decode_cursor,
    next_cursor,
)
from registry.db import after_commit
from registry.tenants import service

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "ci-trainer", "scopes": ["train"]}]},
    )

    name: str = Field("default", min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, max_length=3)


KEY_EXAMPLE = {
    "id": "01J9ZZ0K3Y5W7V9T1R3P5N7M9K",
    "name": "ci-trainer",
    "prefix": "3f9a0c7be214",
    "scopes": ["train"],
    "created_at": "2026-11-30T09:15:02.481Z",
    "revoked_at": None,
}


class KeyOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [KEY_EXAMPLE]},
    )

    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**KEY_EXAMPLE, "api_key": "vera_3f9a0c7be214_Xc2mT9pL4vR7nW1bY6hJ0sD5fG8aQe"}
            ]
        }
    )

    api_key: str = Field(description="The key itself: shown this once, stored only hashed.")


@router.post("", status_code=201, response_model=NewKeyOut, summary="Create an API key")
def create_key(body: KeyIn, principal: AdminDep, session: SessionDep) -> NewKeyOut:
    """Create an API key for this tenant; the response is the only time it is shown."""
    key, plaintext = service.create_api_key(
        session, principal.tenant_id, body.scopes, body.name, actor_key_id=principal.key_id
    )
    return NewKeyOut(**KeyOut.model_validate(key).model_dump(), api_key=plaintext)


@router.get("", response_model=Page[KeyOut], summary="List API keys")
def list_keys(
    principal: AdminDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[KeyOut]:
    """This tenant's API keys (never the secrets), oldest first."""
    rows = service.list_api_keys(
        session, principal.tenant_id, after=decode_cursor(cursor, ByCreatedAt), limit=limit
    )
    return Page(
        items=[KeyOut.model_validate(k) for k in rows],
        next_cursor=next_cursor(rows, limit, created_key),
    )


@router.delete("/{key_id}", response_model=KeyOut, summary="Revoke an API key")
def revoke_key(key_id: str, principal: AdminDep, session: SessionDep, request: Request) -> KeyOut:
    """Revoke a key: at once on this server, within a few seconds on the others (their
    auth caches)."""
    key = service.revoke_api_key(
        session, principal.tenant_id, key_id, actor_key_id=principal.key_id
    )
    after_commit(session, lambda: request.app.state.auth_cache.forget_key(key_id))
    return KeyOut.model_validate(key)
