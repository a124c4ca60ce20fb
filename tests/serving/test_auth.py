"""The server's key check against the real registry app: concurrent requests of one key
share one `GET /v1/me` call (no burst of calls whenever a busy key's answer expires)."""

from __future__ import annotations

import asyncio

import httpx

from registry.errors import RegistryError
from registry.serving.auth import KeyChecker
from tests.api.conftest import app, client, dispatcher, settings, tenant  # noqa: F401


class CountingApp:
    """The registry app, counting the /v1/me requests that reach it."""

    def __init__(self, app) -> None:  # noqa: F811
        self.app, self.me_calls = app, 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/me":
            self.me_calls += 1
        await self.app(scope, receive, send)


def test_concurrent_checks_of_one_key_share_one_registry_call(app, client, tenant):  # noqa: F811
    counting = CountingApp(app)

    async def scenario() -> list:
        transport = httpx.ASGITransport(app=counting)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
            keys = KeyChecker(http, tenant.id, "acme")
            good = f"Bearer {tenant.keys['read']}"
            answers = await asyncio.gather(*(keys.check(good) for _ in range(32)))
            assert counting.me_calls == 1
            # An unknown key: one call too, and every waiter gets the same 401.
            bad = await asyncio.gather(
                *(keys.check("Bearer vera_unknown") for _ in range(8)), return_exceptions=True
            )
            assert counting.me_calls == 2
            assert all(isinstance(e, RegistryError) and e.status_code == 401 for e in bad)
            # Cached: no call at all.
            await keys.check(good)
            assert counting.me_calls == 2
            return answers

    answers = asyncio.run(scenario())
    assert {a["tenant_id"] for a in answers} == {tenant.id}


def test_a_failed_check_is_not_cached(app, client, tenant):  # noqa: F811
    async def scenario() -> None:
        async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as http:  # nothing there
            keys = KeyChecker(http, tenant.id, "acme")
            for _ in range(2):  # asked again: an outage is not remembered
                errors = await asyncio.gather(
                    *(keys.check(f"Bearer {tenant.keys['read']}") for _ in range(4)),
                    return_exceptions=True,
                )
                assert {getattr(e, "status_code", None) for e in errors} == {503}
                assert not keys._asking

    asyncio.run(scenario())
