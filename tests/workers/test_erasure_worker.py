"""Erasing a user while a real worker trains their job: the worker loses its lease and stops,
and nothing it stored for the job (checkpoints) stays in the store."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from registry.adapters import deletion
from registry.config import Settings
from registry.db import session_scope
from registry.jobs import lease
from registry.jobs.models import Job
from registry.storage import LocalBlobStore
from tests import factories
from tests.workers.test_end_to_end import submit
from tests.workers.test_retention import _job
from workers import checkpoints
from workers.training import WorkerContext


@pytest.fixture
def claimed(pg_session_factory, tmp_path):
    """A worker context, and a claim on erin's job."""
    store = LocalBlobStore(tmp_path / "blobs", 1 << 20)
    ctx = WorkerContext(Settings(_env_file=None, home=tmp_path), pg_session_factory, store)
    with session_scope(pg_session_factory) as session:
        tenant = factories.tenant(session)
        adapter = factories.adapter(session, tenant.id, user_id="erin")
        dataset = factories.dataset(session, tenant.id, user_id="erin")
        job = _job(session, tenant.id, adapter, dataset.id, "queued")
        claim = factories.claim_alone(session, job.id, "worker-1")
    return ctx, tenant.id, claim


def test_a_checkpoint_stored_after_the_erasure_is_removed_again(claimed):
    ctx, tenant_id, claim = claimed
    with session_scope(ctx.session_factory) as session:
        deletion.erase_user(session, tenant_id, "erin", actor_key_id=None)
    with pytest.raises(lease.LeaseLost):
        checkpoints.save(ctx, claim, {"member": b"erin's vectors"}, step=5)
    assert list(ctx.store.list_blobs()) == []


def test_a_job_taken_over_keeps_what_was_stored_for_gc_to_decide(claimed):
    # The other copy may store the very same bytes: only GC (with its grace period) decides.
    ctx, _, claim = claimed
    with session_scope(ctx.session_factory) as session:
        session.execute(update(Job).values(lease_token=Job.lease_token + 1))
    with pytest.raises(lease.LeaseLost):
        checkpoints.save(ctx, claim, {"member": b"erin's vectors"}, step=5)
    assert len(list(ctx.store.list_blobs())) == 1


@pytest.mark.slow
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
