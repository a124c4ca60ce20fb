"""Erasing a user while a real worker trains their job: the worker loses its lease and stops,
and nothing it stored for the job (checkpoints) stays in the store."""

from __future__ import annotations

import time

import pytest

from tests.workers.test_end_to_end import submit

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stack_overrides", [{"checkpoint_interval_s": 0.3}], indirect=True)
def test_erasing_a_user_mid_training_leaves_no_blob_of_theirs(stack, stack_overrides):
    stack.workers.start()
    job = submit(stack, max_steps=5000, user_id="erin")
    stack.wait_for(job["id"], lambda j: j["state"] == "running" and j["step"] >= 3)
    time.sleep(1.0)  # a few checkpoints written by now
    store = stack.app.state.store
    base = stack.client.get("/v1/base-models", headers=stack.auth).json()["items"][0]
    model_files = {f["sha256"] for f in base["files"]}
    assert {b.sha256 for b in store.list_blobs()} - model_files  # dataset, checkpoint
    response = stack.client.delete("/v1/users/erin", headers=stack.auth)
    assert response.status_code == 200, response.text
    assert response.json()["counts"]["jobs_cancelled"] == 1
    # The worker finds its lease gone at its next heartbeat or checkpoint, and stops.
    deadline = time.monotonic() + 30
    while "lease_lost" not in stack.workers.logs():
        assert time.monotonic() < deadline, stack.workers.logs()
        time.sleep(0.2)
    time.sleep(1.0)
    assert {b.sha256 for b in store.list_blobs()} == model_files
