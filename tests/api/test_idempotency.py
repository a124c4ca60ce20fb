"""Idempotency-Key on PostgreSQL under real concurrency: every racer gets the one job."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from registry.db import session_scope
from registry.jobs.models import Job
from tests.api import helpers

RACERS = 10


def _setup(client, tenant):
    auth = tenant.auth("train")
    admin = tenant.auth()
    base = helpers.register_base_model(client, admin)
    projection = helpers.register_projection(client, admin, base["id"])
    dataset = helpers.upload_dataset(client, auth)
    return auth, helpers.job_body(base, projection, dataset)


def _race(count, fn):
    barrier = threading.Barrier(count)

    def call(index):
        barrier.wait()
        return fn(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, range(count)))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_submits_with_one_key_all_get_the_same_job(client, tenant, dispatcher, app):
    auth, body = _setup(client, tenant)
    headers = {**auth, "Idempotency-Key": "race-1"}
    responses = _race(RACERS, lambda _: client.post("/v1/jobs", json=body, headers=headers))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * (RACERS - 1) + [202], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    job_id = responses[0].json()["id"]
    assert dispatcher.sent == [(job_id, None)]
    with session_scope(app.state.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_submits_with_one_key_and_different_bodies_one_job_rest_409(
    client, tenant, dispatcher, app
):
    auth, body = _setup(client, tenant)
    headers = {**auth, "Idempotency-Key": "race-2"}

    def submit(index):
        return client.post("/v1/jobs", json={**body, "publish": index % 2 == 0}, headers=headers)

    responses = _race(RACERS, submit)
    created = [r for r in responses if r.status_code == 202]
    assert len(created) == 1, [r.text for r in responses]
    winner = created[0].json()
    for response in responses:
        if response.json().get("id") == winner["id"]:
            continue
        if response.json().get("publish") == winner["publish"]:  # same body: a replay
            assert response.status_code == 200
            continue
        error = response.json()["error"]
        assert response.status_code == 409 and error["code"] == "idempotency_key_reused"
        assert error["details"] == {"job_id": winner["id"]}
    assert len(dispatcher.sent) == 1
