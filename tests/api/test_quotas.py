"""Quotas through the API: the operator sets them, submits and uploads are held to them,
GET /v1/usage shows usage against them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from registry.audit.models import AuditEvent
from registry.config import Settings
from registry.db import session_scope
from registry.jobs.models import Job
from tests.api import helpers
from tests.api.test_idempotency import RACERS, _race

OPERATOR = {"Authorization": "Bearer op-secret-token"}


@pytest.fixture
def settings(db_url, tmp_path):
    return Settings(
        _env_file=None,
        database_url=db_url,
        storage_url=f"file://{tmp_path / 'blobs'}",
        max_dataset_bytes=64 * 1024,
        operator_token="op-secret-token",
    )


def set_quotas(client, name: str, **quotas) -> dict:
    response = client.patch(f"/v1/operator/tenants/{name}/quotas", json=quotas, headers=OPERATOR)
    assert response.status_code == 200, response.text
    return response.json()


def _world(client, tenant):
    admin = tenant.auth()
    base = helpers.register_base_model(client, admin)
    projection = helpers.register_projection(client, admin, base["id"])
    return base, projection


def test_usage_counts_jobs_bytes_and_users_against_the_limits(client, tenant, settings):
    base, projection = _world(client, tenant)
    datasets = [helpers.upload_dataset(client, tenant.auth("train"), u) for u in ("a", "b")]
    for dataset in datasets:
        body = helpers.job_body(base, projection, dataset)
        assert client.post("/v1/jobs", json=body, headers=tenant.auth("train")).status_code == 202
    usage = client.get("/v1/usage", headers=tenant.auth("read")).json()
    stored = sum(d["size_bytes"] for d in datasets)
    assert usage["quotas"] == {
        "max_active_jobs": {"limit": settings.max_active_jobs, "used": 2},
        "max_stored_bytes": {"limit": None, "used": stored},
        "max_users": {"limit": None, "used": 2},
        "max_requests_per_s": {"limit": None, "used": None},
    }
    assert usage["retention"] == {
        "keep_versions": settings.keep_versions,
        "keep_alias_days": settings.keep_alias_days,
        "keep_dataset_days": settings.keep_dataset_days,
    }


def test_operator_sets_and_resets_quotas_audited(client, tenant, app, settings):
    detail = set_quotas(client, "acme", max_active_jobs=5, max_users=3)
    assert detail["quotas"]["max_active_jobs"] == {"limit": 5, "used": 0, "own": True}
    assert detail["quotas"]["max_users"]["own"] is True
    assert detail["quotas"]["max_stored_bytes"] == {"limit": None, "used": 0, "own": False}
    detail = set_quotas(client, "acme", max_active_jobs=None)  # null: back to the default
    assert detail["quotas"]["max_active_jobs"]["limit"] == settings.max_active_jobs
    assert detail["quotas"]["max_active_jobs"]["own"] is False
    assert detail["quotas"]["max_users"]["limit"] == 3  # untouched
    usage = client.get("/v1/usage", headers=tenant.auth("read")).json()
    assert usage["quotas"]["max_users"]["limit"] == 3
    with session_scope(app.state.session_factory) as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "quotas.changed").order_by(AuditEvent.id)
        ).all()
        assert [(r.actor_key_id, r.details) for r in rows] == [
            (None, {"max_active_jobs": 5, "max_users": 3}),
            (None, {"max_active_jobs": None}),
        ]


def test_operator_api_takes_only_the_operator_token(client, tenant, other_tenant):
    assert client.get("/v1/operator/tenants").status_code == 401
    assert client.get("/v1/operator/tenants", headers=tenant.auth()).status_code == 401
    wrong = {"Authorization": "Bearer op-secret-tokeN"}
    response = client.get("/v1/operator/tenants", headers=wrong)
    assert response.status_code == 401 and response.json()["error"]["code"] == "bad_operator_token"
    page = client.get("/v1/operator/tenants", params={"limit": 1}, headers=OPERATOR).json()
    assert [t["name"] for t in page["items"]] == ["acme"]
    rest = client.get(
        "/v1/operator/tenants", params={"cursor": page["next_cursor"]}, headers=OPERATOR
    ).json()
    assert [t["name"] for t in rest["items"]] == ["globex"] and rest["next_cursor"] is None
    response = client.get("/v1/operator/tenants/nobody", headers=OPERATOR)
    assert response.status_code == 404
    url = "/v1/operator/tenants/acme/quotas"
    assert client.patch(url, json={"max_users": 0}, headers=OPERATOR).status_code == 422
    # Retention is the tenant's own (PATCH /v1/retention), not the operator's.
    assert client.patch(url, json={"keep_versions": 1}, headers=OPERATOR).status_code == 422


def test_operator_api_is_off_without_a_token(db_url, tmp_path, engine):
    from fastapi.testclient import TestClient

    from registry.main import create_app

    settings = Settings(_env_file=None, database_url=db_url, storage_url=f"file://{tmp_path}")
    with TestClient(create_app(settings)) as client:
        response = client.get("/v1/operator/tenants", headers=OPERATOR)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "operator_api_off" and "VERA_OPERATOR_TOKEN" in error["message"]


def test_active_jobs_limit_409_names_limit_and_usage_replay_not_counted(client, tenant):
    base, projection = _world(client, tenant)
    set_quotas(client, "acme", max_active_jobs=2)
    auth = tenant.auth("train")
    dataset = helpers.upload_dataset(client, auth)
    body = helpers.job_body(base, projection, dataset)
    first = client.post("/v1/jobs", json=body, headers={**auth, "Idempotency-Key": "k1"})
    assert client.post("/v1/jobs", json=body, headers=auth).status_code == 202
    refused = client.post("/v1/jobs", json=body, headers=auth)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"] == {"limit": "max_active_jobs", "allowed": 2, "used": 2}
    assert "max_active_jobs" in error["message"] and "2" in error["message"]
    # The replay of a job the tenant already has is no new job: answered, not refused.
    replay = client.post("/v1/jobs", json=body, headers={**auth, "Idempotency-Key": "k1"})
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    client.post(f"/v1/jobs/{first.json()['id']}/cancel", headers=auth)
    assert client.post("/v1/jobs", json=body, headers=auth).status_code == 202


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_submits_never_pass_the_active_jobs_limit(client, tenant, app):
    base, projection = _world(client, tenant)
    set_quotas(client, "acme", max_active_jobs=3)
    auth = tenant.auth("train")
    body = helpers.job_body(base, projection, helpers.upload_dataset(client, auth))
    responses = _race(RACERS, lambda _: client.post("/v1/jobs", json=body, headers=auth))
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] * 3 + [409] * (RACERS - 3), [r.text for r in responses]
    with session_scope(app.state.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 3


def test_stored_bytes_limit_413_on_upload_409_on_submit_when_full(client, tenant):
    base, projection = _world(client, tenant)
    auth = tenant.auth("train")
    dataset = helpers.upload_dataset(client, auth)
    size = dataset["size_bytes"]
    set_quotas(client, "acme", max_stored_bytes=size + size // 2)
    response = client.post(
        "/v1/datasets",
        params={"user_id": "alice", "task": "sequence-classification"},
        content=helpers.dataset_bytes(),
        headers={**auth, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"] == {
        "limit": "max_stored_bytes",
        "allowed": size + size // 2,
        "used": size,
        "requested": size,
    }
    body = helpers.job_body(base, projection, dataset)
    assert client.post("/v1/jobs", json=body, headers=auth).status_code == 202  # not full yet
    set_quotas(client, "acme", max_stored_bytes=size)
    refused = client.post("/v1/jobs", json=body, headers=auth)
    assert refused.status_code == 409
    assert refused.json()["error"]["details"]["limit"] == "max_stored_bytes"


def test_users_limit_refuses_a_new_users_first_upload_only(client, tenant, other_tenant):
    auth = tenant.auth("train")
    helpers.upload_dataset(client, auth, "alice")
    set_quotas(client, "acme", max_users=1)
    helpers.upload_dataset(client, auth, "alice")  # a known user: fine
    response = client.post(
        "/v1/datasets",
        params={"user_id": "bob", "task": "sequence-classification"},
        content=helpers.dataset_bytes(),
        headers={**auth, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"limit": "max_users", "allowed": 1, "used": 1}
    helpers.upload_dataset(client, other_tenant.auth("train"), "bob")  # per tenant
