"""Acceptance: after erasing a user, no row of any table and no blob in the store holds the
user's id, dataset text or adapter vectors, on SQLite + a local directory and on PostgreSQL +
S3 (moto's server); another user's identical blobs stay; resolve answers 404; the feed says
`user_deleted`."""

from __future__ import annotations

import json
import os
import secrets
import struct

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, select

from registry.audit import service as audit
from registry.audit.models import AuditEvent
from registry.config import Settings
from registry.db import session_scope
from registry.jobs import lease
from registry.main import create_app
from registry.webhooks.models import WEBHOOK_EVENTS, WebhookDelivery, WebhookEndpoint
from tests import factories
from tests.api import helpers
from tests.api.conftest import RecordingDispatcher, Tenant
from tests.conftest import _clean
from tests.storage.conftest import bucket, moto_endpoint, s3_settings  # noqa: F401


@pytest.fixture(params=["sqlite+local", "postgresql+s3"])
def app(request, tmp_path):
    if request.param == "sqlite+local":
        settings = Settings(
            _env_file=None,
            database_url=request.getfixturevalue("sqlite_url"),
            storage_url=f"file://{tmp_path / 'blobs'}",
        )
    else:
        settings = s3_settings(
            request.getfixturevalue("moto_endpoint"),
            request.getfixturevalue("bucket"),
            database_url=request.getfixturevalue("pg_url"),
        )
    app = create_app(settings, dispatcher=RecordingDispatcher())
    yield app
    _clean(app.state.engine)
    app.state.engine.dispose()


def _vectors() -> bytes:
    return struct.pack("<16f", *(float(b) + 0.5 for b in os.urandom(16)))


def _dataset(client, tenant, user_id: str, lines: list[str]) -> dict:
    body = "\n".join(json.dumps({"text": t, "label": i % 2}) for i, t in enumerate(lines))
    response = client.post(
        "/v1/datasets",
        params={"user_id": user_id, "task": "sequence-classification"},
        content=body.encode(),
        headers={**tenant.auth(), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def _job(client, tenant, model, projection, dataset) -> str:
    body = helpers.job_body(model, projection, dataset)
    response = client.post("/v1/jobs", json=body, headers=tenant.auth("train"))
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _train(app, job_id: str, *, checkpoint: bytes, version: bytes | None) -> None:
    """What a worker leaves: two checkpoints, then (if `version`) the version and `live`."""
    store, factory = app.state.store, app.state.session_factory
    with session_scope(factory) as session:
        claim = factories.claim_alone(session, job_id, "worker-1")
    for step in (1, 2):
        info = store.put(checkpoint + bytes([step]))
        with session_scope(factory) as session:
            lease.save_checkpoint(session, claim, blob_sha256=info.sha256, step=step)
    if version is not None:
        info = store.put(version)
        with session_scope(factory) as session:
            lease.finish_success(
                session, claim, blob_sha256=info.sha256, size_bytes=info.size, metrics={"loss": 1}
            )


def _rows_holding(engine, needles: list[str]) -> list[str]:
    """Every (table.column: needle) where a stored value holds one of the needles."""
    metadata = MetaData()
    metadata.reflect(engine)
    found = []
    with engine.connect() as conn:
        for table in metadata.tables.values():
            for row in conn.execute(select(table)):
                for column, value in row._mapping.items():
                    if isinstance(value, bytes | memoryview):
                        text = bytes(value).hex() + bytes(value).decode("latin-1")
                    else:
                        text = json.dumps(value, default=str)
                    found += [f"{table.name}.{column}: {n}" for n in needles if n in text]
    return found


def test_erasure_leaves_nothing_of_the_user(app):
    marker = f"private-words-{secrets.token_hex(6)}"
    user_id = f"erin-{secrets.token_hex(6)}"
    own_vectors, shared_vectors = _vectors(), _vectors()
    own_blob = helpers.safetensors_blob(list(struct.unpack("<16f", own_vectors)))
    shared_blob = helpers.safetensors_blob(list(struct.unpack("<16f", shared_vectors)))
    shared_lines = ["the same words", "as another user's"]
    with TestClient(app) as client:
        tenant = Tenant(app, "acme")
        model = helpers.register_base_model(client, tenant.auth())
        projection = helpers.register_projection(client, tenant.auth(), model["id"])
        own_data = _dataset(client, tenant, user_id, [f"{marker} {i}" for i in range(4)])
        shared_data = _dataset(client, tenant, user_id, shared_lines)
        with session_scope(app.state.session_factory) as session:
            session.add(
                WebhookEndpoint(
                    tenant_id=tenant.id,
                    url="https://hooks.example/x",
                    event_types=list(WEBHOOK_EVENTS),
                    secret="whsec_test",
                )
            )
        # Finished (with a live version), running (with a checkpoint), and queued jobs.
        done = _job(client, tenant, model, projection, own_data)
        _train(app, done, checkpoint=b"ckpt" + own_vectors + marker.encode(), version=own_blob)
        running = _job(client, tenant, model, projection, shared_data)
        _train(app, running, checkpoint=b"ckpt2" + own_vectors, version=None)
        _job(client, tenant, model, projection, own_data)
        adapter_id = client.get(f"/v1/jobs/{done}", headers=tenant.auth()).json()["adapter_id"]
        with session_scope(app.state.session_factory) as session:
            # What other parts write about an adapter: an audit record, a webhook delivery.
            audit.record(session, tenant.id, "alias.set", adapter_id=adapter_id, target="live")
            endpoint_id = session.scalar(select(WebhookEndpoint.id))
            session.add(
                WebhookDelivery(
                    tenant_id=tenant.id,
                    endpoint_id=endpoint_id,
                    event_type="job.succeeded",
                    event_id="e1",
                    payload={"data": {"user_id": user_id}},
                    adapter_id=adapter_id,
                )
            )
        # Another user with identical bytes: a version and a dataset.
        bob = helpers.adapter_with_versions(app, tenant.id, [shared_blob], user_id="bob")
        bob_data = _dataset(client, tenant, "bob", shared_lines)
        with session_scope(app.state.session_factory) as session:
            second = factories.adapter(session, tenant.id, user_id=user_id, name="second")
            factories.version(session, second, blob_sha256=factories.sha(shared_blob))

        # Every cache holds the user now: manifest, version index, blob bytes.
        resolve = {"user_id": user_id}
        manifest = client.get("/v1/resolve", params=resolve, headers=tenant.auth("read")).json()
        blob_url = manifest["blob_url"]
        assert client.get(blob_url, headers=tenant.auth("read")).content == own_blob

        response = client.delete(f"/v1/users/{user_id}", headers=tenant.auth())
        assert response.status_code == 200, response.text
        counts = response.json()["counts"]
        assert counts["adapters"] == 2 and counts["jobs"] == 3 and counts["jobs_cancelled"] == 2
        assert counts["datasets"] == 2 and counts["versions"] == 2

        assert (
            client.get("/v1/resolve", params=resolve, headers=tenant.auth("read")).status_code
            == 404
        )
        assert client.get(blob_url, headers=tenant.auth("read")).status_code == 404
        feed = client.get("/v1/feed", headers=tenant.auth("read")).json()["events"]
        assert feed[-1]["kind"] == "user_deleted" and adapter_id in feed[-1]["adapter_ids"]
        assert user_id not in json.dumps(feed)
        # Bob's identical blobs stay and serve.
        bob_blob = client.get(f"/v1/adapters/{bob}/versions/1/blob", headers=tenant.auth("read"))
        assert bob_blob.content == shared_blob
        assert app.state.store.exists(bob_data["blob_sha256"])

    own_shas = [own_data["blob_sha256"], factories.sha(own_blob)]
    engine = create_engine(app.state.engine.url)
    try:
        assert _rows_holding(engine, [user_id, marker, own_vectors.hex(), *own_shas]) == []
        assert "adapters.user_id: bob" in _rows_holding(engine, ["bob"])  # the scan sees rows
    finally:
        engine.dispose()
    store = app.state.store
    for info in store.list_blobs():
        data = store.get(info.sha256)
        assert marker.encode() not in data and own_vectors not in data, info.sha256
        assert user_id.encode() not in data
    with session_scope(app.state.session_factory) as session:
        erased = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.erased")).one()
        assert erased.target is None and erased.details == counts
        assert erased.actor_key_id is not None
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert delivery.event_type == "user.deleted"
        assert delivery.payload["data"]["adapter_ids"] == feed[-1]["adapter_ids"]
