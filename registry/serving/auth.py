"""Clients authenticate with an API key of the server's tenant: checked with the registry's
`GET /v1/me`, the answer (good or bad) cached for a few seconds."""

from __future__ import annotations

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
            cached = (time.monotonic() + CACHE_TTL_S, await self._ask(key))
            self._cache[digest] = cached
            self._cache.move_to_end(digest)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        if isinstance(cached[1], RegistryError):
            raise cached[1]
        return cached[1]

    async def _ask(self, key: str) -> dict | RegistryError:
        try:
            response = await self.http.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
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
