"""/metrics is safe to expose: aggregates only, and a bearer token when one is set."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pydantic import SecretStr

from registry.main import create_app
from tests.api.helpers import job_body, register_base_model, register_projection, upload_dataset


def _submit(client, auth, user_id: str) -> dict:
    base = register_base_model(client, auth)
    projection = register_projection(client, auth, base["id"])
    dataset = upload_dataset(client, auth, user_id=user_id)
    response = client.post("/v1/jobs", json=job_body(base, projection, dataset), headers=auth)
    assert response.status_code == 202, response.text
    return response.json()


def test_metrics_name_no_tenant_user_or_job(client, tenant, other_tenant):
    jobs = [
        _submit(client, tenant.auth(), "alice-7f3a"),
        _submit(client, other_tenant.auth(), "bob-91c2"),
    ]
    client.get(f"/v1/jobs/{jobs[0]['id']}", headers=tenant.auth())
    metrics = client.get("/metrics").text
    assert 'vera_jobs{state="queued"} 2.0' in metrics  # one service-wide number
    for private in (tenant.id, other_tenant.id, "alice-7f3a", "bob-91c2", jobs[0]["id"]):
        assert private not in metrics


def test_metrics_token_when_set(settings, engine, dispatcher):
    app = create_app(
        settings.model_copy(update={"metrics_token": SecretStr("scrape-me")}),
        dispatcher=dispatcher,
    )
    try:
        with TestClient(app) as client:
            anonymous = client.get("/metrics")
            wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
            right = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    finally:
        app.state.engine.dispose()
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.json()["error"]["code"] == "metrics_token"
    assert "VERA_METRICS_TOKEN" in anonymous.json()["error"]["message"]
    assert right.status_code == 200 and "vera_jobs" in right.text
