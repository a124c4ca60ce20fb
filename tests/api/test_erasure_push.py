"""An erasure through one API process: once its DELETE has returned, another process (whose
cache held the user's manifest) answers 404 — the deletion is pushed like an alias move."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from registry.db import session_scope
from registry.tenants.models import Tenant
from tests import factories
from tests.api.test_push_invalidation import start_apis, world  # noqa: F401


def test_an_erased_user_is_gone_on_every_process_once_delete_returns(
    world,  # noqa: F811
    start_apis,  # noqa: F811
    pg_session_factory,
):
    with session_scope(pg_session_factory) as session:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.name == "acme"))
        _, admin = factories.api_key(session, tenant_id, ["admin"])
    processes = start_apis(a={}, b={"resolve_cache_s": "30"})
    auth = {"Authorization": f"Bearer {admin}"}
    a = httpx.Client(base_url=processes["a"].url, headers=auth)
    b = httpx.Client(base_url=processes["b"].url, headers=auth)
    resolve = {"user_id": "alice"}
    with a, b:
        alias = f"/v1/adapters/{world['adapter_id']}/aliases/live"
        assert a.put(alias, json={"version": 2}).status_code == 200
        for _ in range(3):  # B serves alice from its cache now
            assert b.get("/v1/resolve", params=resolve).json()["version"] == 2
        erased = a.delete("/v1/users/alice")
        assert erased.status_code == 200, erased.text
        assert b.get("/v1/resolve", params=resolve).status_code == 404
        feed = b.get("/v1/feed").json()["events"]
        assert [e["kind"] for e in feed] == ["user_deleted"]
