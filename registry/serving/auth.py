"""Clients authenticate with an API key of the server's tenant: checked with the registry's
`GET /v1/me`, the answer (good or bad) cached for a few seconds."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict

import httpx

from registry.errors import Forbidden, RegistryError, Unauthorized

CACHE_TTL_S = 5.0
CACHE_ENTRIES = 10_000  # bounded whatever keys clients make up


class RegistryUnavailable(RegistryError):
    status_code = 503
    code = "registry_unavailable"


class KeyChecker:
    def __init__(self, http: httpx.AsyncClient, tenant_id: str, tenant_name: str) -> None:
        self.http = http
        self.tenant_id = tenant_id
        self.tenant_name = tenant_name
        self._cache: OrderedDict[str, tuple[float, dict | RegistryError]] = OrderedDict()
        # One /v1/me call per key at a time: when a busy key's answer expires, the requests
        # that arrive meanwhile wait for that call instead of each asking the registry
        # (64 clients of one key would otherwise send 64 calls every CACHE_TTL_S).
        self._asking: dict[str, asyncio.Task] = {}

    async def check(self, authorization: str | None) -> dict:
        """The key's /v1/me answer, or the error to send (401, 403, 503)."""
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Unauthorized(
                "send 'Authorization: Bearer <API key>' with a registry API key of tenant "
                f"{self.tenant_name!r}",
                code="missing_key",
            )
        digest = hashlib.sha256(key.encode()).hexdigest()
        cached = self._cache.get(digest)
        if cached is None or cached[0] < time.monotonic():
            cached = await self._refresh(digest, key)
        if isinstance(cached[1], RegistryError):
            raise cached[1]
        return cached[1]

    async def _refresh(self, digest: str, key: str) -> tuple[float, dict | RegistryError]:
        asking = self._asking.get(digest)
        if asking is None:
            # A task of its own: a client that disconnects does not cancel the others' call.
            asking = asyncio.ensure_future(self._ask_and_remember(digest, key))
            self._asking[digest] = asking
            asking.add_done_callback(lambda task: self._forget(digest, task))
        return await asyncio.shield(asking)

    def _forget(self, digest: str, task: asyncio.Task) -> None:
        self._asking.pop(digest, None)
        if not task.cancelled():
            task.exception()  # retrieved, also when every waiter has gone

    async def _ask_and_remember(self, digest: str, key: str) -> tuple[float, dict | RegistryError]:
        cached = (time.monotonic() + CACHE_TTL_S, await self._ask(key))
        self._cache[digest] = cached
        self._cache.move_to_end(digest)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return cached

    async def _ask(self, key: str) -> dict | RegistryError:
        headers = {"Authorization": f"Bearer {key}"}
        try:
            try:
                response = await self.http.get("/v1/me", headers=headers)
            except httpx.TransportError:
                # Once more on a fresh connection: the registry closes idle keep-alive
                # connections (uvicorn: after 5 s, as long as answers are cached), and a
                # check can pick one up just as it closes ("Server disconnected").
                response = await self.http.get("/v1/me", headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"cannot check the API key with the registry: {exc}") from exc
        if response.status_code == 401:
            return Unauthorized("the registry does not know this API key (or it was revoked)")
        if response.status_code != 200:
            raise RegistryUnavailable(
                f"the registry answered {response.status_code} when checking the API key"
            )
        me = response.json()
        if me["tenant_id"] != self.tenant_id:
            return Forbidden(
                f"this key belongs to tenant {me['tenant_name']!r}; this server serves tenant "
                f"{self.tenant_name!r}",
                code="wrong_tenant",
            )
        return me
