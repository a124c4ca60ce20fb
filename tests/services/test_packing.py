"""Which jobs pack together, and claiming a pack: one lease and fencing token per job."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update

from registry.jobs import lease
from registry.jobs import service as jobs
from registry.jobs.models import Job, JobEvent
from registry.jobs.packing import pack_key
from registry.jobs.schemas import Hyperparameters, JobRequest
from tests import factories


def _key(**changes) -> str:
    facts = dict(
        base_model_id="b",
        projection_id="p",
        target_modules=["query", "value"],
        task="sequence-classification",
        hyperparameters=Hyperparameters().model_dump(),
        queue=None,
    )
    return pack_key(**{**facts, **changes})


def test_pack_key_separates_what_the_injection_fixes_and_nothing_else():
    same = _key()
    assert _key(target_modules=["value", "query"]) == same
    per_job = {"learning_rate": 0.5, "batch_size": 3, "seed": 9, "max_steps": 7, "epochs": 1}
    assert _key(hyperparameters=Hyperparameters(**per_job).model_dump()) == same
    apart = [
        _key(base_model_id="b2"),
        _key(projection_id="p2"),
        _key(target_modules=["query"]),
        _key(task="causal-lm"),
        _key(hyperparameters=Hyperparameters(vera_dropout=0.1).model_dump()),
        _key(hyperparameters=Hyperparameters(d_initial=0.5).model_dump()),
        _key(queue="gpu"),
    ]
    assert len({same, *apart}) == len(apart) + 1


@pytest.fixture
def five_jobs(session):
    """Four jobs that pack together (three users, one user twice) and one that cannot."""
    tenant = factories.tenant(session)
    adapter = factories.adapter(session, tenant.id)
    ids = []
    targets = [["query", "value"], ["value", "query"], ["query", "value"], ["query", "value"]]
    for user, target_modules in zip(
        ["u1", "u2", "u1", "u3", "u4"], [*targets, ["query"]], strict=True
    ):
        dataset = factories.dataset(session, tenant.id, user)
        job, _ = jobs.submit_job(
            session,
            tenant.id,
            JobRequest(
                user_id=user,
                dataset_id=dataset.id,
                base_model_id=adapter.base_model_id,
                projection_id=adapter.projection_id,
                target_modules=target_modules,
            ),
        )
        ids.append(job.id)
    return session, tenant, ids


def test_claim_pack_takes_compatible_queued_jobs_each_with_its_own_token(five_jobs):
    session, tenant, ids = five_jobs
    jobs.request_cancel(session, tenant.id, ids[3])  # cancelled: never claimed
    claims = lease.claim_pack(session, ids[1], "w", 60, pack_id="p1", room=3)
    assert [c.job_id for c in claims] == [ids[1], ids[0], ids[2]]  # the task's job, then oldest
    assert all(c.attempt == 1 and c.token == 1 for c in claims)
    rows = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(ids)))}
    for claim in claims:
        session.refresh(rows[claim.job_id])
        assert (rows[claim.job_id].state, rows[claim.job_id].pack_id) == ("running", "p1")
        assert rows[claim.job_id].pack_size == 3
    running = session.scalars(
        select(JobEvent.data).where(JobEvent.job_id == ids[0], JobEvent.seq == 2)
    ).one()
    assert running == {
        "state": "running",
        "attempt": 1,
        "worker": "w",
        "pack_id": "p1",
        "pack_size": 3,
    }
    # Nothing left to join: the fourth packable job is cancelled, the fifth targets other layers.
    more = lease.claim_companions(
        session, rows[ids[0]].pack_key, "w", 60, pack_id="p1", limit=5, pack_size=3
    )
    assert more == [] and lease.claim_pack(session, ids[0], "w2", 60, pack_id="p2", room=8) == []
    # Each claim is fenced on its own: finishing one leaves the others running.
    lease.finish_cancelled(session, claims[1])
    lease.heartbeat(session, claims[2], 60)
    with pytest.raises(lease.LeaseLost):
        lease.heartbeat(session, claims[1], 60)


def test_checkpoint_writes_are_fenced_and_an_ended_job_forgets_its_checkpoint(five_jobs):
    session, _, ids = five_jobs
    claim = factories.claim_alone(session, ids[0], "w")
    lease.save_checkpoint(session, claim, blob_sha256="c" * 64, step=5)
    lease.hand_back(session, claim, "shutdown")
    job = session.get(Job, ids[0])
    session.refresh(job)
    assert (job.state, job.checkpoint_blob_sha256, job.checkpoint_step) == ("queued", "c" * 64, 5)
    with pytest.raises(lease.LeaseLost):  # the old claim can no longer point it elsewhere
        lease.save_checkpoint(session, claim, blob_sha256="d" * 64, step=6)
    again = factories.claim_alone(session, ids[0], "w2")
    lease.finish_success(session, again, blob_sha256="e" * 64, size_bytes=1, metrics={})
    session.refresh(job)
    assert (job.checkpoint_blob_sha256, job.checkpoint_step) == (None, None)


def test_a_job_another_worker_is_claiming_is_skipped_not_waited_for(pg_session_factory):
    from registry.db import session_scope

    with session_scope(pg_session_factory) as session:
        tenant = factories.tenant(session)
        adapter = factories.adapter(session, tenant.id)
        ids = []
        for user in ("a", "b", "c"):
            request = JobRequest(
                user_id=user,
                dataset_id=factories.dataset(session, tenant.id, user).id,
                base_model_id=adapter.base_model_id,
                projection_id=adapter.projection_id,
                target_modules=["query", "value"],
            )
            ids.append(jobs.submit_job(session, tenant.id, request)[0].id)
        key = session.get(Job, ids[0]).pack_key
    with pg_session_factory() as other, pg_session_factory() as session:
        # Another worker holds the oldest job's row mid-claim.
        other.scalar(select(Job).where(Job.id == ids[0]).with_for_update())
        session.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting would fail, not hang
        claims = lease.claim_companions(session, key, "w", 60, pack_id="p", limit=2, pack_size=0)
        assert [c.job_id for c in claims] == ids[1:]
        session.commit()
        other.rollback()


def test_a_job_queued_before_packs_trains_alone(five_jobs):
    session, _, ids = five_jobs
    session.execute(update(Job).where(Job.id.in_(ids)).values(pack_key=None))
    claims = lease.claim_pack(session, ids[0], "w", 60, pack_id="p", room=8)
    assert [c.job_id for c in claims] == [ids[0]]
