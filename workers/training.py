"""One training job, end to end, as a plain function (the Celery task is a thin wrapper)."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import traceback
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

import registry.models  # noqa: F401  (every mapper, so foreign keys resolve)
from registry.adapters.models import Adapter, AdapterVersion
from registry.base_models.models import BaseModel, Projection
from registry.config import Settings
from registry.db import session_scope
from registry.jobs import lease
from registry.jobs.datasets import numbered_lines
from registry.jobs.errors import UserInputError
from registry.jobs.models import Dataset, Job
from workers.model_cache import BaseModelMismatch, ModelCache, ModelSpec

log = logging.getLogger(__name__)
SUMMARY_CHARS = 300
TRACEBACK_CHARS = 4096


class RetryLater(Exception):
    """An infrastructure failure; the job went back to the queue for another attempt."""


@dataclass
class WorkerContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    store: object
    models: ModelCache | None = None
    worker_name: str = "worker"

    def __post_init__(self) -> None:
        if self.models is None:
            self.models = ModelCache(self.settings, self.store)


@dataclass
class JobSpec:
    job: Job
    dataset: Dataset
    base: BaseModel
    projection: Projection
    adapter: Adapter
    warm_start_sha256: str | None


def _load_spec(session: Session, job_id: str) -> JobSpec:
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


# Set when this worker process begins a warm shutdown (workers/tasks.py): the running job
# stops at its next step and goes back to the queue instead of holding the shutdown up.
SHUTTING_DOWN = threading.Event()


class Heartbeat:
    """Extends the lease and writes progress every interval from a thread of its own, so a
    long step or a slow model load never looks like a dead worker."""

    def __init__(self, ctx: WorkerContext, claim: lease.Claim, max_runtime_s: float) -> None:
        self.ctx, self.claim = ctx, claim
        self.cancel_requested = False
        self.lost = False
        self.latest = None
        self._last_step = -1
        self._started = time.monotonic()
        self.first_step_at: float | None = None
        self.timed_out = False
        self.shutting_down = False
        self.deadline = self._started + max_runtime_s
        self.last_step_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{claim.job_id}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if not self.lost:
            self.beat()  # the last step's progress, however short the run

    def on_progress(self, progress) -> None:
        now = time.time()
        self.first_step_at = self.first_step_at or now
        self.last_step_at = now
        self.latest = progress

    def should_stop(self) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
        if SHUTTING_DOWN.is_set() and not self.cancel_requested:
            self.shutting_down = True
        return self.cancel_requested or self.lost or self.timed_out or self.shutting_down

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(self.ctx.settings.heartbeat_interval_s)

    def beat(self) -> None:
        progress = self.latest
        try:
            with session_scope(self.ctx.session_factory) as session:
                kwargs = {}
                if progress is not None:
                    kwargs = dict(
                        step=progress.step,
                        total_steps=progress.total_steps,
                        progress=progress.step / max(1, progress.total_steps),
                    )
                self.cancel_requested = lease.heartbeat(
                    session, self.claim, self.ctx.settings.heartbeat_stale_s, **kwargs
                )
                if progress is not None and progress.step != self._last_step:
                    self._last_step = progress.step
                    elapsed = time.monotonic() - self._started
                    data = _progress_data(progress, elapsed)
                    lease.record_event(session, self.claim, "progress", data)
        except lease.LeaseLost:
            self.lost = True
        except Exception:  # a database blip: the next beat tries again
            log.warning("heartbeat for job %s failed", self.claim.job_id, exc_info=True)


def _progress_data(progress, elapsed_s: float) -> dict:
    remaining = max(0, progress.total_steps - progress.step)
    eta = elapsed_s / progress.step * remaining if progress.step else None
    return {
        "step": progress.step,
        "total_steps": progress.total_steps,
        "loss": round(float(progress.loss), 6),
        "tokens_per_second": round(float(progress.tokens_per_second), 1),
        "eta_s": None if eta is None else round(eta, 1),
    }


def run_training_job(ctx: WorkerContext, job_id: str) -> str:
    """Claim, train, store and record one job. Returns what happened."""
    from registry.vera.train import TrainingCancelled

    with session_scope(ctx.session_factory) as session:
        claim = lease.claim_job(session, job_id, ctx.worker_name, ctx.settings.heartbeat_stale_s)
    if claim is None:
        with session_scope(ctx.session_factory) as session:
            outcome = lease.fail_unclaimable(session, job_id)
        return outcome or "not_claimed"
    with session_scope(ctx.session_factory) as session:
        spec = _load_spec(session, job_id)
    try:
        limit = runtime_limit(ctx.settings, spec.job.hyperparameters.get("max_runtime_s"))
        with Heartbeat(ctx, claim, limit) as beat:
            try:
                blob, metrics = _train(ctx, spec, beat)
            except TrainingCancelled as exc:
                if beat.timed_out:
                    raise UserInputError(
                        f"the job ran past its limit of {limit:.0f} s at step {exc.step}; "
                        "raise hyperparameters.max_runtime_s or train fewer steps"
                    ) from exc
                if beat.shutting_down:
                    with session_scope(ctx.session_factory) as session:
                        lease.hand_back(session, claim, f"worker shut down at step {exc.step}")
                    return "handed_back"
                raise
            if beat.lost:
                return "lease_lost"
        # Wall-clock marks for latency figures (submit → first step, last step → live).
        metrics.update(first_step_at=beat.first_step_at, last_step_at=beat.last_step_at)
        info = ctx.store.put(blob)
        with session_scope(ctx.session_factory) as session:
            version = lease.finish_success(
                session, claim, blob_sha256=info.sha256, size_bytes=info.size, metrics=metrics
            )
            return f"succeeded:v{version.number}"
    except lease.LeaseLost:
        return "lease_lost"
    except Exception as exc:
        return _record_failure(ctx, claim, exc)


def _record_failure(ctx: WorkerContext, claim: lease.Claim, exc: Exception) -> str:
    from registry.vera.projection import ProjectionMismatch
    from registry.vera.train import TrainingCancelled

    try:
        with session_scope(ctx.session_factory) as session:
            if isinstance(exc, TrainingCancelled):
                lease.finish_cancelled(session, claim)
                return "cancelled"
            if isinstance(exc, UserInputError):
                lease.finish_failure(session, claim, code=exc.code, kind="user", message=str(exc))
                return "failed:user"
            lease.record_event(session, claim, "log", _system_error_event(exc, claim.attempt))
            if isinstance(exc, ProjectionMismatch | BaseModelMismatch):
                lease.finish_failure(
                    session, claim, code=type(exc).__name__, kind="system", message=str(exc)
                )
                return "failed:system"
            log.exception("job %s attempt %s failed", claim.job_id, claim.attempt)
            job = session.get(Job, claim.job_id)
            if claim.attempt >= job.max_attempts:
                lease.finish_failure(
                    session, claim, code="infrastructure", kind="system", message=_summary(exc)
                )
                return "failed:system"
            lease.release(session, claim, _summary(exc))
    except lease.LeaseLost:
        return "lease_lost"
    raise RetryLater(str(exc)) from exc


def _summary(exc: BaseException) -> str:
    """What a user sees of a system error: its type and first line, never a traceback."""
    first_line = next(iter(str(exc).splitlines()), "")
    return f"{type(exc).__name__}: {first_line}"[:SUMMARY_CHARS]


def _system_error_event(exc: BaseException, attempt: int) -> dict:
    """For whoever debugs the job: the end of the traceback, where the cause is."""
    trace = "".join(traceback.format_exception(exc))
    return {
        "message": f"attempt {attempt} failed with a system error: {_summary(exc)}",
        "traceback": trace[-TRACEBACK_CHARS:],
    }


def _examples(ctx: WorkerContext, spec: JobSpec) -> list[dict]:
    data = io.BytesIO(ctx.store.get(spec.dataset.blob_sha256))
    # The same line rule the upload was validated with (U+2028 inside a string is no break).
    lines = numbered_lines(data, ctx.settings.max_dataset_line_bytes)
    rows = [json.loads(line) for _, line in lines if line.strip(" \t")]
    if spec.dataset.task == "sequence-classification":
        index = {json.dumps(label): i for i, label in enumerate(spec.dataset.labels)}
        rows = [{"text": r["text"], "label": index[json.dumps(r["label"])]} for r in rows]
    return rows


def _check_fits(model, spec: JobSpec) -> None:
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


def _train(ctx: WorkerContext, spec: JobSpec, beat: Heartbeat) -> tuple[bytes, dict]:
    from registry.vera.config import VeraConfig
    from registry.vera.peft_io import adapter_blob, read_adapter
    from registry.vera.train import TrainingArgs, train

    task, hp = spec.dataset.task, spec.job.hyperparameters
    labels = spec.dataset.labels
    model, tokenizer = ctx.models.get(
        ModelSpec.of(spec.base), task, len(labels) if labels else None
    )
    _check_fits(model, spec)
    config = VeraConfig(
        r=spec.projection.r,
        target_modules=spec.adapter.target_modules,
        projection_prng_key=spec.projection.seed,
        task=task,
        d_initial=hp["d_initial"],
        vera_dropout=hp["vera_dropout"],
    )
    args = TrainingArgs(
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
    warm = (
        read_adapter(ctx.store.get(spec.warm_start_sha256)).vectors
        if spec.warm_start_sha256
        else None
    )
    started = time.monotonic()
    # No blanket except here: input found wrong raises UserInputError where it is found;
    # any other exception, a ValueError from a bug included, is a system error.
    result = train(
        model,
        _examples(ctx, spec),
        config,
        args,
        tokenizer=tokenizer,
        warm_start=warm,
        expected_fingerprint=spec.projection.fingerprint,
        progress=beat.on_progress,
        should_cancel=beat.should_stop,
    )
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, int | float | str)}
    metrics["wall_seconds"] = round(time.monotonic() - started, 3)
    identity = {
        "tenant_id": spec.job.tenant_id,
        "user_id": spec.job.user_id,
        "adapter_id": spec.adapter.id,
        "adapter_name": spec.adapter.name,
        "job_id": spec.job.id,
        "labels": json.dumps(labels),
    }
    blob = adapter_blob(
        result.vectors,
        base_model_hash=spec.base.content_hash,
        projection_fingerprint=spec.projection.fingerprint,
        identity=identity,
        config=config,
        base_model_name_or_path=spec.base.name,
    )
    return blob, metrics
