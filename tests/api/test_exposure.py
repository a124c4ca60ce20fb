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


def test_metrics_show_the_packs_workers_record(client, app):
    from registry.db import session_scope
    from registry.jobs.packing import record_pack, start_pack

    with session_scope(app.state.session_factory) as session:
        for pack_id, size in (("a" * 32, 3), ("b" * 32, 5)):
            start_pack(session, pack_id, "w")
            counts = dict(size=size, max_size=size, rows=40 * size, tokens=1, step_seconds=2.0)
            record_pack(session, pack_id, steps=10, **counts)
        start_pack(session, "c" * 32, "w")  # ended: counted in the totals only
        record_pack(
            session,
            "c" * 32,
            size=0,
            max_size=2,
            steps=10,
            rows=20,
            tokens=1,
            step_seconds=1.0,
            finished=True,
        )
    metrics = client.get("/metrics").text
    for line in (
        "vera_packs 2.0",
        "vera_pack_jobs 8.0",
        "vera_pack_rows_per_step 16.0",  # 320 rows over 20 steps of the packs training now
        "vera_pack_seconds_per_step 0.2",
        "vera_pack_steps_total 30.0",
        "vera_pack_rows_total 340.0",
    ):
        assert line in metrics, line
