"""What a worker reads and writes for one job: its rows, its training settings, its model
fit, its warm start and checkpoint, and the adapter blob it produces. No training here."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

from sqlalchemy.orm import Session

import registry.models  # noqa: F401  (every mapper, so foreign keys resolve)
from registry.adapters.models import Adapter, AdapterVersion
from registry.base_models.models import BaseModel, Projection
from registry.config import Settings
from registry.jobs.datasets import numbered_lines
from registry.jobs.errors import UserInputError
from registry.jobs.models import Dataset, Job


@dataclass
class JobSpec:
    job: Job
    dataset: Dataset
    base: BaseModel
    projection: Projection
    adapter: Adapter
    warm_start_sha256: str | None

    @property
    def num_labels(self) -> int | None:
        return len(self.dataset.labels) if self.dataset.labels else None


def load_spec(session: Session, job_id: str) -> JobSpec:
    job = session.get(Job, job_id)
    warm = (
        session.get(AdapterVersion, job.warm_start_version_id)
        if job.warm_start_version_id
        else None
    )
    return JobSpec(
        job,
        session.get(Dataset, job.dataset_id),
        session.get(BaseModel, job.base_model_id),
        session.get(Projection, job.projection_id),
        session.get(Adapter, job.adapter_id),
        warm.blob_sha256 if warm else None,
    )


def runtime_limit(settings: Settings, job_limit_s: int | None) -> float:
    """The job's own max_runtime_s, never above the server's limit."""
    return float(min(settings.job_max_runtime_s, job_limit_s or settings.job_max_runtime_s))


def examples(store, spec: JobSpec, settings: Settings) -> list[dict]:
    if spec.dataset.blob_sha256 is None:  # submitted while retention purged it
        raise UserInputError(
            f"dataset {spec.dataset.id} was purged by retention; upload it again",
            code="dataset_purged",
        )
    data = io.BytesIO(store.get(spec.dataset.blob_sha256))
    # The same line rule the upload was validated with (U+2028 inside a string is no break).
    lines = numbered_lines(data, settings.max_dataset_line_bytes)
    rows = [json.loads(line) for _, line in lines if line.strip(" \t")]
    if spec.dataset.task == "sequence-classification":
        index = {json.dumps(label): i for i, label in enumerate(spec.dataset.labels)}
        rows = [{"text": r["text"], "label": index[json.dumps(r["label"])]} for r in rows]
    return rows


def check_fits(model, spec: JobSpec) -> None:
    """The submit-time rule again, on the model as loaded here (older rows lack the facts)."""
    from registry.vera.capabilities import job_problems
    from registry.vera.describe import loaded_capabilities

    task = spec.dataset.task
    problems = job_problems(
        loaded_capabilities(model, task),
        task=task,
        target_modules=spec.adapter.target_modules,
        max_seq_len=spec.job.hyperparameters["max_seq_len"],
        projection_dims=(spec.projection.max_d_in, spec.projection.max_d_out),
    )
    if problems:
        raise UserInputError(
            "the job does not fit its base model: "
            + "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        )


def vera_config(spec: JobSpec):
    """What the injection fixes; equal for every job of one pack (registry/jobs/packing.py)."""
    from registry.vera.config import VeraConfig

    hp = spec.job.hyperparameters
    return VeraConfig(
        r=spec.projection.r,
        target_modules=spec.adapter.target_modules,
        projection_prng_key=spec.projection.seed,
        task=spec.dataset.task,
        d_initial=hp["d_initial"],
        vera_dropout=hp["vera_dropout"],
    )


def training_args(spec: JobSpec):
    from registry.vera.train import TrainingArgs

    hp = spec.job.hyperparameters
    return TrainingArgs(
        learning_rate=hp["learning_rate"],
        weight_decay=hp["weight_decay"],
        epochs=hp["epochs"],
        max_steps=hp["max_steps"],
        batch_size=hp["batch_size"],
        warmup_ratio=hp["warmup_ratio"],
        schedule=hp["scheduler"],
        max_grad_norm=hp["max_grad_norm"],
        seed=hp["seed"],
        max_length=hp["max_seq_len"],
        eval_fraction=hp["eval_fraction"],
    )


def warm_start_vectors(store, spec: JobSpec):
    from registry.vera.peft_io import read_adapter

    return (
        read_adapter(store.get(spec.warm_start_sha256)).vectors if spec.warm_start_sha256 else None
    )


def adapter_blob(spec: JobSpec, vectors) -> bytes:
    """The version's safetensors file, with the job's identity in its header."""
    from registry.vera.peft_io import adapter_blob as build

    identity = {
        "tenant_id": spec.job.tenant_id,
        "user_id": spec.job.user_id,
        "adapter_id": spec.adapter.id,
        "adapter_name": spec.adapter.name,
        "job_id": spec.job.id,
        "labels": json.dumps(spec.dataset.labels),
    }
    return build(
        vectors,
        base_model_hash=spec.base.content_hash,
        projection_fingerprint=spec.projection.fingerprint,
        identity=identity,
        config=vera_config(spec),
        base_model_name_or_path=spec.base.name,
    )
