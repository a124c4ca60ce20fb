"""Per-API-key request rate limit (the tenant's `max_requests_per_s`): 429 with Retry-After.

GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp): a key may
send `rate` requests a second on average and a burst of max(1, rate) at once. With a Redis
broker the state lives in Redis (one Lua script call, Redis's own clock), so every API
process shares one budget per key; otherwise each process keeps its own. The tenant's
limit is cached per process for `LIMIT_TTL_S`: no database query per request.

If Redis cannot be reached the request is let through (and logged): the limit protects
the service, an outage of it must not take the API down.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from fastapi.concurrency import run_in_threadpool

from registry.config import Settings, reveal
from registry.db import session_scope
from registry.errors import RegistryError
from registry.tenants.policy import effective_policy

log = logging.getLogger(__name__)

LIMIT_TTL_S = 5.0
REDIS_TIMEOUT_S = 0.5
MAX_LOCAL_KEYS = 100_000

# KEYS[1]: the key's theoretical arrival time; ARGV: emission interval (s), burst.
# Returns "0" when admitted, else the seconds to wait (as a string: Lua numbers would be
# truncated to integers in the reply).
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - burst * interval - now
if wait > 0 then return tostring(wait) end
local ttl_ms = math.ceil((new_tat - now) * 1000) + 1
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', ttl_ms)
return '0'
"""


class RateLimited(RegistryError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, rate: float, wait_s: float) -> None:
        retry_after = max(1, math.ceil(wait_s))
        super().__init__(
            f"this API key is over its tenant's limit of {rate:g} requests per second; "
            f"retry after {retry_after} s (or ask the operator to raise max_requests_per_s)",
            details={"limit": "max_requests_per_s", "allowed": rate, "retry_after_s": retry_after},
        )
        self.headers = {"Retry-After": str(retry_after)}


def gcra(tat: float, now: float, rate: float) -> tuple[float, float]:
    """One request at `now` against a key's theoretical arrival time `tat`: (new tat, wait).
    wait > 0: refused (the tat stays as it was); else admitted."""
    interval, burst = 1.0 / rate, max(1.0, rate)
    new_tat = max(tat, now) + interval
    wait = new_tat - burst * interval - now
    return (tat, wait) if wait > 0 else (new_tat, 0.0)


class RateLimiter:
    """Admits or refuses one request of a key; `check` raises RateLimited."""

    def __init__(
        self, settings: Settings, session_factory, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._factory = session_factory
        self._clock = clock
        self._limits: dict[str, tuple[float, float | None]] = {}  # tenant → (expires, rate)
        self._local: dict[str, float] = {}  # key id → tat (no Redis)
        url = reveal(settings.broker_url)
        self._redis_url = url if url.startswith(("redis://", "rediss://")) else None
        self._redis = None
        self._redis_loop = None
        self._script = None

    @property
    def shared(self) -> bool:
        return self._redis_url is not None

    async def check(self, tenant_id: str, key_id: str) -> None:
        rate = await self._limit(tenant_id)
        if rate is None:
            return
        if self.shared:
            wait = await self._redis_wait(key_id, rate)
        else:
            wait = self._local_wait(key_id, rate)
        if wait > 0:
            raise RateLimited(rate, wait)

    async def aclose(self) -> None:
        """Close the Redis connection (the app's shutdown)."""
        if self._redis is not None and self._redis_loop is asyncio.get_running_loop():
            await self._redis.aclose()
        self._redis = self._redis_loop = self._script = None

    def forget_tenant(self, tenant_id: str) -> None:
        """Read the tenant's limit again on its next request (the operator changed it)."""
        self._limits.pop(tenant_id, None)

    async def _limit(self, tenant_id: str) -> float | None:
        now = time.monotonic()
        hit = self._limits.get(tenant_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        rate = await run_in_threadpool(self._read_limit, tenant_id)
        if len(self._limits) >= MAX_LOCAL_KEYS:
            self._limits.clear()
        self._limits[tenant_id] = (now + LIMIT_TTL_S, rate)
        return rate

    def _read_limit(self, tenant_id: str) -> float | None:
        with session_scope(self._factory) as session:
            return effective_policy(session, tenant_id, self._settings).max_requests_per_s

    def _local_wait(self, key_id: str, rate: float) -> float:
        if len(self._local) >= MAX_LOCAL_KEYS:
            self._local.clear()
        tat, wait = gcra(self._local.get(key_id, 0.0), self._clock(), rate)
        self._local[key_id] = tat
        return wait

    async def _redis_wait(self, key_id: str, rate: float) -> float:
        try:
            script = self._script_for_loop()
            answer = await script(keys=[f"vera:rate:{key_id}"], args=[1.0 / rate, max(1.0, rate)])
            return float(answer)
        except Exception:  # Redis down or slow: admit (see the module docstring)
            log.warning("rate limit: Redis unreachable, request admitted", exc_info=True)
            return 0.0

    def _script_for_loop(self):
        # A redis.asyncio client belongs to the event loop it was made on.
        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis_loop is not loop:
            import redis.asyncio

            self._redis = redis.asyncio.Redis.from_url(
                self._redis_url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
            )
            self._redis_loop = loop
            self._script = self._redis.register_script(GCRA_LUA)
        return self._script
