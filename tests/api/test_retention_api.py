"""GET /v1/retention shows the policy in force; PATCH (admin) sets or resets its fields."""

from __future__ import annotations

from sqlalchemy import select

from registry.audit.models import AuditEvent
from registry.db import session_scope


def test_defaults_then_set_then_reset(client, app, tenant, other_tenant):
    shown = client.get("/v1/retention", headers=tenant.auth("read")).json()
    assert shown == {
        "keep_versions": 10,
        "keep_alias_days": 30,
        "keep_dataset_days": 30,
        "tenant_set": [],
    }
    body = {"keep_versions": 3, "keep_dataset_days": 0}
    assert client.patch("/v1/retention", json=body, headers=tenant.auth("train")).status_code == 403
    response = client.patch("/v1/retention", json=body, headers=tenant.auth())
    assert response.status_code == 200, response.text
    assert response.json()["keep_versions"] == 3 and response.json()["keep_dataset_days"] == 0
    assert response.json()["tenant_set"] == ["keep_versions", "keep_dataset_days"]
    # Another tenant keeps the defaults.
    assert client.get("/v1/retention", headers=other_tenant.auth()).json()["keep_versions"] == 10
    reset = client.patch("/v1/retention", json={"keep_versions": None}, headers=tenant.auth())
    assert reset.json()["keep_versions"] == 10 and reset.json()["tenant_set"] == [
        "keep_dataset_days"
    ]
    with session_scope(app.state.session_factory) as session:
        changes = session.scalars(
            select(AuditEvent.details)
            .where(AuditEvent.action == "retention.changed")
            .order_by(AuditEvent.id)
        ).all()
    assert changes == [{"keep_dataset_days": 0, "keep_versions": 3}, {"keep_versions": None}]


def test_out_of_range_values_are_refused(client, tenant):
    bad = ({"keep_versions": 0}, {"keep_alias_days": -1}, {"keep_days": 3}, {"keep_versions": True})
    for body in bad:
        response = client.patch("/v1/retention", json=body, headers=tenant.auth())
        assert response.status_code == 422, body


def test_a_purged_dataset_shows_so_and_cannot_train(client, app, tenant, settings):
    from datetime import timedelta

    from registry.db import utcnow
    from tests.api import helpers
    from workers.retention import apply_retention

    auth = tenant.auth()
    model = helpers.register_base_model(client, auth)
    projection = helpers.register_projection(client, auth, model["id"])
    dataset = helpers.upload_dataset(client, auth)
    client.patch("/v1/retention", json={"keep_dataset_days": 1}, headers=auth)
    later = utcnow() + timedelta(days=2)  # never trained on, uploaded two days before
    report = apply_retention(app.state.session_factory, settings, now=later)
    assert report.datasets_purged == [dataset["id"]]
    shown = client.get(f"/v1/datasets/{dataset['id']}", headers=auth).json()
    assert shown["blob_sha256"] is None and shown["purged_at"] is not None
    assert not app.state.store.exists(dataset["blob_sha256"])
    body = helpers.job_body(model, projection, dataset)
    response = client.post("/v1/jobs", json=body, headers=auth)
    assert response.status_code == 422 and "purged by retention" in response.text
