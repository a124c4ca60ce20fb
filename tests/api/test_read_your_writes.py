"""A writer reads its own write: publish answers carry the manifest, resolve takes
min_generation and then never answers from an older cache entry."""

from __future__ import annotations

import pytest

from registry.adapters import service as adapters
from registry.db import session_scope
from tests.api import helpers


@pytest.fixture
def settings(settings):
    # A long cache and no push: only min_generation can get past a stale entry here.
    return settings.model_copy(update={"resolve_cache_s": 60, "pg_listen": False})


def _adapter(app, tenant) -> str:
    blobs = [helpers.safetensors_blob([float(i), 2.0]) for i in range(3)]
    return helpers.adapter_with_versions(app, tenant.id, blobs)


def _resolve(client, tenant, **params):
    return client.get(
        "/v1/resolve", params={"user_id": "alice", **params}, headers=tenant.auth("read")
    )


def test_publish_and_rollback_answer_with_the_manifest_resolve_serves(client, app, tenant):
    adapter_id = _adapter(app, tenant)
    url = f"/v1/adapters/{adapter_id}/aliases/live"
    auth = tenant.auth("train")
    client.put(url, json={"version": 1}, headers=auth)
    published = client.put(url, json={"version": 2}, headers=auth).json()
    assert published["manifest"] == _resolve(client, tenant).json()
    assert published["manifest"]["version"] == 2
    assert published["manifest"]["alias_generation"] == published["generation"] == 2
    rolled = client.post(f"{url}/rollback", headers=auth).json()
    assert rolled["manifest"] == _resolve(client, tenant).json()
    assert (rolled["manifest"]["version"], rolled["manifest"]["alias_generation"]) == (1, 3)
    assert client.get(url, headers=auth).json()["manifest"] == rolled["manifest"]


def test_min_generation_skips_a_stale_cache_entry(client, app, tenant):
    adapter_id = _adapter(app, tenant)
    auth = tenant.auth("train")
    client.put(f"/v1/adapters/{adapter_id}/aliases/live", json={"version": 1}, headers=auth)
    assert _resolve(client, tenant).json()["version"] == 1  # now cached here
    # Another process moves the alias: this one does not hear of it for 60 s.
    with session_scope(app.state.session_factory) as session:
        generation = adapters.set_alias(session, tenant.id, adapter_id, "live", 2).generation
    assert _resolve(client, tenant).json()["version"] == 1  # stale, as configured
    fresh = _resolve(client, tenant, min_generation=generation)
    assert fresh.status_code == 200 and fresh.json()["version"] == 2
    assert fresh.json()["alias_generation"] == generation
    assert _resolve(client, tenant).json()["version"] == 2  # the fresh read replaced it


def test_min_generation_not_reached_is_a_clear_409(client, app, tenant):
    adapter_id = _adapter(app, tenant)
    auth = tenant.auth("train")
    client.put(f"/v1/adapters/{adapter_id}/aliases/live", json={"version": 1}, headers=auth)
    ahead = _resolve(client, tenant, min_generation=5)
    assert ahead.status_code == 409
    error = ahead.json()["error"]
    assert error["code"] == "generation_not_visible"
    assert error["details"] == {"alias_generation": 1, "min_generation": 5}
    assert "min_generation 5" in error["message"]
    assert _resolve(client, tenant, min_generation=0).status_code == 422
    assert _resolve(client, tenant, min_generation=1).json()["version"] == 1
