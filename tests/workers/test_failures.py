"""How the real runner classifies a failure: user input, or a system error with its traceback."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from registry.db import session_scope
from registry.jobs import service as jobs
from registry.jobs.models import Job
from tests.workers.test_runner import _job, _submit, ctx  # noqa: F401  (ctx: a fixture)
from workers.training import TRACEBACK_CHARS, RetryLater, run_training_job

pytest.importorskip("torch")


def _break_the_job(ctx, job_id: str) -> None:  # noqa: F811
    """Stand-in for a bug of ours: a value submit-time validation can never let through, so
    the training loop raises ValueError from our own code."""
    with session_scope(ctx.session_factory) as session:
        job = session.get(Job, job_id)
        hyperparameters = {**job.hyperparameters, "scheduler": "no-such-schedule"}
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(hyperparameters=hyperparameters, max_attempts=2)
        )


def test_a_value_error_from_a_bug_is_a_retried_system_error_with_its_traceback(ctx):  # noqa: F811
    tenant_id, job_id = _submit(ctx, max_steps=2)
    _break_the_job(ctx, job_id)
    with pytest.raises(RetryLater):  # another attempt may not hit it: the job is queued again
        run_training_job(ctx, job_id)
    assert _job(ctx, tenant_id, job_id).state == "queued"
    assert run_training_job(ctx, job_id) == "failed:system"
    job = _job(ctx, tenant_id, job_id)
    assert (job.error_kind, job.error_code) == ("system", "infrastructure")
    assert job.error_message.startswith("ValueError: schedule must be linear, cosine or constant")
    assert "Traceback" not in job.error_message and "File " not in job.error_message
    with session_scope(ctx.session_factory) as session:
        events = jobs.list_job_events(session, tenant_id, job_id)
    traces = [e.data for e in events if e.kind == "log" and "traceback" in e.data]
    assert [t["message"].split(" failed")[0] for t in traces] == ["attempt 1", "attempt 2"]
    for trace in traces:
        assert 0 < len(trace["traceback"]) <= TRACEBACK_CHARS
        assert "registry/vera/train.py" in trace["traceback"]
        assert trace["traceback"].rstrip().endswith("got 'no-such-schedule'")
