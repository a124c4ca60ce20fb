"""ServingRuntime resolves a feed event at the event's generation, so an API process that
has not heard of the move yet cannot hand it the old version."""

from __future__ import annotations

import pytest

from registry.db import session_scope

pytest.importorskip("torch")

from tests.client.test_runtime import Registry, fresh_model, random_vectors


@pytest.fixture
def settings(settings):
    # No push and a 60 s cache: the app keeps serving what it cached until told otherwise.
    return settings.model_copy(update={"resolve_cache_s": 60, "pg_listen": False})


def test_a_feed_event_is_resolved_at_its_generation(app, registry):
    from registry.adapters import service
    from registry.client.api import RegistryClient
    from registry.client.runtime import ServingRuntime

    reg = Registry(app, registry)
    reg.add_version("alice", random_vectors(1))
    runtime = ServingRuntime.for_manifest(registry, fresh_model(), registry.resolve("alice"))
    runtime.load_user("alice")  # version 1, now cached by the app
    runtime.sync()
    # Version 2 goes live through another process: straight in the database.
    with session_scope(app.state.session_factory) as session:
        info = app.state.store.put(reg.blob("alice", random_vectors(2)))
        adapter = service.get_adapter(session, registry.tenant.id, reg.adapters["alice"])
        version = service.create_version(
            session, adapter, blob_sha256=info.sha256, size_bytes=info.size
        )
        service.set_alias(session, registry.tenant.id, adapter.id, "live", version.number)
    bystander = RegistryClient(api_key=registry.tenant.keys["read"], http=registry.http)
    assert bystander.resolve("alice").version == 1  # the app's cache is stale, as set up
    assert runtime.sync() == ["alice"]
    assert runtime.users["alice"].version == 2
