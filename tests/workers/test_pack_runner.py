"""The pack runner in process (no broker): member expansion for learning_rate "auto"."""

from __future__ import annotations

import pytest

from registry.adapters.models import AdapterVersion
from registry.db import session_scope
from registry.jobs.models import Job
from registry.vera.auto_lr import CANDIDATE_RATES
from tests.workers.test_runner import _submit, ctx  # noqa: F401  (ctx: a fixture)
from workers.training import run_training_job

pytest.importorskip("torch")
pytestmark = pytest.mark.slow


@pytest.fixture
def roomy(ctx):  # noqa: F811
    ctx.settings = ctx.settings.model_copy(update={"job_max_runtime_s": 600})
    return ctx


def test_auto_learning_rate_trains_every_candidate_and_stores_the_winner(roomy):
    _, job_id = _submit(roomy, max_steps=3, learning_rate="auto", eval_fraction=0.25)
    assert run_training_job(roomy, job_id).startswith("succeeded")
    with session_scope(roomy.session_factory) as session:
        job = session.get(Job, job_id)
        version = session.get(AdapterVersion, job.result_version_id)
        metrics = version.metrics
    candidates = metrics["learning_rate_auto"]["candidates"]
    assert [c["learning_rate"] for c in candidates] == list(CANDIDATE_RATES)
    assert all(c["eval_loss"] is not None for c in candidates)
    best = min(candidates, key=lambda c: c["eval_loss"])
    assert metrics["learning_rate"] == best["learning_rate"]
    assert metrics["eval_loss"] == pytest.approx(best["eval_loss"])
    assert job.pack_size == 1  # one job, though four members trained in its pack


def _same_pack_job(ctx, job_id: str, user_id: str, **hyper) -> str:  # noqa: F811
    """Another user's job on the first job's base model, projection and targets."""
    from registry.jobs import service as jobs
    from registry.jobs.datasets import create_dataset
    from registry.jobs.schemas import JobRequest
    from tests.workers.test_end_to_end import dataset_lines

    with session_scope(ctx.session_factory) as session:
        first = session.get(Job, job_id)
        task = "sequence-classification"
        data = create_dataset(
            session, ctx.store, first.tenant_id, user_id, task, dataset_lines(), ctx.settings
        )
        request = JobRequest(
            user_id=user_id,
            dataset_id=data.id,
            base_model_id=first.base_model_id,
            projection_id=first.projection_id,
            target_modules=["value", "query"],
            hyperparameters={"batch_size": 4, "max_seq_len": 16, **hyper},
        )
        return jobs.submit_job(session, first.tenant_id, request)[0].id


def test_a_job_queued_while_a_pack_trains_joins_it_at_a_step_boundary(roomy):
    import threading
    import time

    _, first = _submit(roomy, max_steps=80)
    outcomes = []
    runner = threading.Thread(target=lambda: outcomes.append(run_training_job(roomy, first)))
    runner.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with session_scope(roomy.session_factory) as session:
            if session.get(Job, first).step >= 3:
                break
        time.sleep(0.05)
    second = _same_pack_job(roomy, first, "bob", max_steps=5)
    runner.join(120)
    assert outcomes and outcomes[0].startswith("succeeded")
    with session_scope(roomy.session_factory) as session:
        jobs = [session.get(Job, first), session.get(Job, second)]
        assert [j.state for j in jobs] == ["succeeded", "succeeded"]
        assert jobs[0].pack_id == jobs[1].pack_id
        metrics = [session.get(AdapterVersion, j.result_version_id).metrics for j in jobs]
    assert [m["pack_size"] for m in metrics] == [2, 2]
    assert metrics[1]["steps"] == 5
