import json

from registry.db import session_scope
from registry.jobs import service as jobs
from tests.api import helpers


def _setup(client, tenant):
    auth = tenant.auth()
    base = helpers.register_base_model(client, auth)
    projection = helpers.register_projection(client, auth, base["id"])
    dataset = helpers.upload_dataset(client, auth)
    return auth, base, projection, dataset


def _blob_files(settings):
    root = settings.storage_url.removeprefix("file://")
    import os

    return sorted(f for _, _, files in os.walk(root) for f in files)


def test_dataset_upload_validation_stores_nothing_on_bad_input(client, tenant, settings):
    auth = {**tenant.auth("train"), "Content-Type": "application/x-ndjson"}
    params = {"user_id": "alice", "task": "sequence-classification"}
    bad = client.post(
        "/v1/datasets",
        params=params,
        headers=auth,
        content=b'{"text": "a", "label": 1}\n{oops\n{"text": "b"}\n',
    )
    assert bad.status_code == 422
    assert [d["line"] for d in bad.json()["error"]["details"]] == [2, 3]
    assert _blob_files(settings) == []
    ok = client.post("/v1/datasets", params=params, headers=auth, content=helpers.dataset_bytes())
    assert ok.status_code == 201 and ok.json()["rows"] == 4 and ok.json()["labels"] == [0, 1]
    assert len(_blob_files(settings)) == 1


def test_too_large_upload_is_413_before_reading_and_stores_nothing(client, tenant, settings):
    auth = {**tenant.auth("train"), "Content-Type": "application/x-ndjson"}
    params = {"user_id": "alice", "task": "causal-lm"}
    body = b'{"text": "' + b"x" * (settings.max_dataset_bytes + 10) + b'"}'
    declared = client.post("/v1/datasets", params=params, headers=auth, content=body)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "too_large"

    def chunks():  # no Content-Length: the limit applies while reading
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    streamed = client.post("/v1/datasets", params=params, headers=auth, content=chunks())
    assert streamed.status_code == 413
    assert _blob_files(settings) == []


def test_submit_job_sends_after_commit_and_honours_idempotency(client, tenant, dispatcher, app):
    auth, base, projection, dataset = _setup(client, tenant)
    body = helpers.job_body(base, projection, dataset, queue="gpu-a100")
    first = client.post("/v1/jobs", json=body, headers={**auth, "Idempotency-Key": "abc"})
    assert first.status_code == 202, first.text
    job = first.json()
    assert job["state"] == "queued" and dispatcher.sent == [(job["id"], "gpu-a100")]
    again = client.post("/v1/jobs", json=body, headers={**auth, "Idempotency-Key": "abc"})
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    assert len(dispatcher.sent) == 1
    changed = client.post(
        "/v1/jobs", json={**body, "publish": False}, headers={**auth, "Idempotency-Key": "abc"}
    )
    assert changed.status_code == 409
    with session_scope(app.state.session_factory) as session:
        assert jobs.get_job(session, tenant.id, job["id"]).sent_at is not None


def test_broker_down_keeps_the_job_queued_and_unsent(client, tenant, dispatcher, app):
    auth, base, projection, dataset = _setup(client, tenant)
    dispatcher.fail = True
    response = client.post(
        "/v1/jobs", json=helpers.job_body(base, projection, dataset), headers=auth
    )
    assert response.status_code == 202
    with session_scope(app.state.session_factory) as session:
        job = jobs.get_job(session, tenant.id, response.json()["id"])
        assert job.state == "queued" and job.sent_at is None


def test_submit_rejects_bad_requests_with_field_errors(client, tenant, dispatcher):
    auth, base, projection, dataset = _setup(client, tenant)
    bad = helpers.job_body(base, projection, dataset, user_id="mallory")
    response = client.post("/v1/jobs", json=bad, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "dataset_id"
    ranges = helpers.job_body(
        base, projection, dataset, hyperparameters={"learning_rate": -1, "batch_size": 0}
    )
    response = client.post("/v1/jobs", json=ranges, headers=auth)
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert (
        response.status_code == 422
        and {"body.hyperparameters.learning_rate", "body.hyperparameters.batch_size"} <= fields
    )
    assert dispatcher.sent == []
    assert client.get("/v1/jobs", headers=auth).json()["items"] == []


def test_learning_rate_auto_is_accepted_and_other_words_are_refused(client, tenant):
    auth, base, projection, dataset = _setup(client, tenant)
    auto = helpers.job_body(base, projection, dataset, hyperparameters={"learning_rate": "auto"})
    response = client.post("/v1/jobs", json=auto, headers=auth)
    assert response.status_code == 202
    assert response.json()["hyperparameters"]["learning_rate"] == "auto"
    for word in ("fast", "AUTO", ""):
        body = helpers.job_body(base, projection, dataset, hyperparameters={"learning_rate": word})
        response = client.post("/v1/jobs", json=body, headers=auth)
        assert response.status_code == 422
        [detail] = response.json()["error"]["details"]
        assert detail == {
            "field": "body.hyperparameters.learning_rate",
            "message": 'Input should be a number in (0, 1] or "auto"',
        }
    assert len(client.get("/v1/jobs", headers=auth).json()["items"]) == 1


def test_list_cancel_and_events(client, tenant):
    auth, base, projection, dataset = _setup(client, tenant)
    ids = [
        client.post(
            "/v1/jobs", json=helpers.job_body(base, projection, dataset), headers=auth
        ).json()["id"]
        for _ in range(3)
    ]
    page = client.get("/v1/jobs", params={"limit": 2}, headers=auth).json()
    rest = client.get(
        "/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}, headers=auth
    ).json()
    assert [j["id"] for j in page["items"] + rest["items"]] == ids[::-1]
    assert client.get("/v1/jobs", params={"cursor": "garbage!"}, headers=auth).status_code == 400
    cancelled = client.post(f"/v1/jobs/{ids[0]}/cancel", headers=auth)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert client.post(f"/v1/jobs/{ids[0]}/cancel", headers=auth).status_code == 409
    queued = client.get("/v1/jobs", params={"status": "queued"}, headers=auth).json()["items"]
    assert {j["id"] for j in queued} == set(ids[1:])
    events = client.get(f"/v1/jobs/{ids[0]}/events", headers=auth).json()
    assert [e["data"]["state"] for e in events] == ["queued", "cancelled"]
    later = client.get(f"/v1/jobs/{ids[0]}/events", params={"after": 1}, headers=auth).json()
    assert [e["seq"] for e in later] == [2]
    with client.stream(
        "GET", f"/v1/jobs/{ids[0]}/events", headers={**auth, "Accept": "text/event-stream"}
    ) as stream:
        text = "".join(stream.iter_text())
    frames = [f for f in text.split("\n\n") if f.startswith("id:")]
    assert len(frames) == 2 and text.rstrip().endswith("data: {}")
    assert json.loads(frames[1].split("data: ", 1)[1])["data"]["state"] == "cancelled"
