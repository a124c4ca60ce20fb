"""Annotated dependencies the routers share: session, principal with scopes, store, settings."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from registry.api.openapi import answers
from registry.config import Settings
from registry.db import session_scope
from registry.dispatch import JobDispatcher
from registry.errors import Forbidden, Unauthorized
from registry.storage import BlobStore
from registry.tenants.service import Principal, authenticate

# Scopes imply the ones below them: an admin key may also train and read.
SCOPE_IMPLIES = {"admin": {"admin", "train", "read"}, "train": {"train", "read"}, "read": {"read"}}


def granted_scopes(scopes) -> set[str]:
    """Every scope that `scopes` grant, the implied ones included."""
    return set().union(*(SCOPE_IMPLIES.get(s, {s}) for s in scopes))


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer vera_…`")


def get_session(request: Request) -> Iterator[Session]:
    """The request's transaction: committed when the route returns, rolled back on error."""
    with session_scope(request.app.state.session_factory) as session:
        yield session


# scope="function": commit before the response is sent, so a client never sees a result
# that a failed commit then loses.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Async where nothing blocks: a sync dependency costs a thread-pool round trip per request.
async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> BlobStore:
    return request.app.state.store


async def get_dispatcher(request: Request) -> JobDispatcher:
    return request.app.state.dispatcher


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[BlobStore, Depends(get_store)]
DispatcherDep = Annotated[JobDispatcher, Depends(get_dispatcher)]


@answers(401, 429)
async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise Unauthorized(
            "missing API key: send the header 'Authorization: Bearer <key>'",
            code="missing_api_key",
        )
    cache = request.app.state.auth_cache
    principal = cache.cached(credentials.credentials)
    if principal is None:
        principal = await run_in_threadpool(cache.authenticate, credentials.credentials)
    await request.app.state.rate_limiter.check(principal.tenant_id, principal.key_id)
    return principal


# The caller's key, whatever its scopes (FastAPI resolves it once per request).
PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(scope: str):
    @answers(403)
    async def check(principal: PrincipalDep) -> Principal:
        if scope not in granted_scopes(principal.scopes):
            raise Forbidden(
                f"this API key lacks the '{scope}' scope (it has: {', '.join(principal.scopes)})",
                code="missing_scope",
                details={"required": scope, "granted": sorted(principal.scopes)},
            )
        return principal

    return check


AdminDep = Annotated[Principal, Depends(require("admin"))]
TrainDep = Annotated[Principal, Depends(require("train"))]
ReadDep = Annotated[Principal, Depends(require("read"))]


class AuthCache:
    """Authenticates keys against the database, remembering good ones for a few seconds.

    Hot paths (resolve, download) would otherwise pay a key lookup per request; a revoked
    key stops working within `ttl_s`.
    """

    def __init__(self, session_factory, ttl_s: float = 5.0, max_entries: int = 10_000) -> None:
        self._factory = session_factory
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> Principal | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        with self._lock:
            hit = self._entries.get(digest)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def authenticate(self, key: str) -> Principal:
        hit = self.cached(key)
        if hit is not None:
            return hit
        digest = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        with session_scope(self._factory) as session:
            principal = authenticate(session, key)
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[digest] = (now + self._ttl_s, principal)
        return principal

    def forget_key(self, key_id: str) -> None:
        """Drop a revoked key at once in this process (others drop it within `ttl_s`)."""
        with self._lock:
            for digest in [d for d, (_, p) in self._entries.items() if p.key_id == key_id]:
                del self._entries[digest]

    def forget_all(self) -> None:
        with self._lock:
            self._entries.clear()
