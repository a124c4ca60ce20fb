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
