"""Fencing: only the holder of the newest lease token may write a job."""

from datetime import timedelta

import pytest
from sqlalchemy import update

from registry.adapters import service as adapters
from registry.db import utcnow
from registry.jobs import lease
from registry.jobs import service as jobs
from registry.jobs.models import Job
from registry.jobs.schemas import JobRequest
from tests import factories


@pytest.fixture
def queued(session):
    tenant = factories.tenant(session)
    adapter = factories.adapter(session, tenant.id)
    dataset = factories.dataset(session, tenant.id, adapter.user_id)
    job, _ = jobs.submit_job(
        session,
        tenant.id,
        JobRequest(
            user_id=adapter.user_id,
            dataset_id=dataset.id,
            base_model_id=adapter.base_model_id,
            projection_id=adapter.projection_id,
            target_modules=["query", "value"],
        ),
        max_attempts=2,
    )
    return session, tenant, job


def _expire(session, job_id):
    session.execute(
        update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )


def test_claim_once_then_fenced_out_after_takeover(queued):
    session, tenant, job = queued
    first = factories.claim_alone(session, job.id, "w1")
    assert first.token == 1 and first.attempt == 1
    assert factories.claim_alone(session, job.id, "w2") is None  # lease is live
    assert lease.heartbeat(session, first, 60, step=1, total_steps=10, progress=0.1) is False
    _expire(session, job.id)
    second = factories.claim_alone(session, job.id, "w2")
    assert second.token == 2 and second.attempt == 2
    with pytest.raises(lease.LeaseLost):
        lease.heartbeat(session, first, 60)
    with pytest.raises(lease.LeaseLost):
        lease.finish_success(session, first, blob_sha256="a" * 64, size_bytes=1, metrics={})
    with pytest.raises(lease.LeaseLost):
        lease.record_event(session, first, "log", {"message": "stale"})
    version = lease.finish_success(
        session, second, blob_sha256="b" * 64, size_bytes=1, metrics={"loss": 0.1}
    )
    session.refresh(job)
    assert job.state == "succeeded" and job.result_version_id == version.id
    live = adapters.resolve(session, tenant.id, job.user_id)
    assert live["version"] == 1
    assert factories.claim_alone(session, job.id, "w3") is None  # finished: a no-op


def test_cancel_flag_reaches_the_heartbeat_and_out_of_attempts_fails(queued):
    session, tenant, job = queued
    claim = factories.claim_alone(session, job.id, "w1")
    jobs.request_cancel(session, tenant.id, job.id)
    assert lease.heartbeat(session, claim, 60) is True
    lease.finish_cancelled(session, claim)
    session.refresh(job)
    assert job.state == "cancelled"


def test_poison_job_stops_after_max_attempts(queued):
    session, _, job = queued
    for attempt in (1, 2):
        claim = factories.claim_alone(session, job.id, "w")
        assert claim.attempt == attempt
        _expire(session, job.id)
    assert factories.claim_alone(session, job.id, "w") is None
    assert lease.fail_unclaimable(session, job.id) == "failed"
    session.refresh(job)
    assert (job.state, job.error_kind, job.error_code) == ("failed", "system", "too_many_attempts")


def test_hand_back_at_shutdown_queues_again_without_burning_an_attempt(queued):
    session, _, job = queued
    claim = factories.claim_alone(session, job.id, "w")
    assert claim.attempt == 1
    lease.hand_back(session, claim, "worker shut down at step 7")
    session.refresh(job)
    assert (job.state, job.attempts, job.sent_at, job.worker) == ("queued", 0, None, None)
    with pytest.raises(lease.LeaseLost):  # the old claim can no longer write
        lease.record_event(session, claim, "progress", {"step": 8})
    assert factories.claim_alone(session, job.id, "w2").attempt == 1


def test_release_puts_the_job_back(queued):
    session, _, job = queued
    claim = factories.claim_alone(session, job.id, "w")
    lease.release(session, claim, "storage down")
    session.refresh(job)
    assert job.state == "queued" and job.sent_at is not None
    assert factories.claim_alone(session, job.id, "w").token == 2
