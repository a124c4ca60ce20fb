"""Job submission, the guarded state machine, events and cancellation."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.adapters import metadata
from registry.adapters.models import AdapterVersion, Alias
from registry.adapters.service import get_or_create_adapter
from registry.base_models.models import BaseModel, Projection
from registry.blob_refs import note_freed
from registry.config import Settings
from registry.db import created_before, get_owned, utcnow
from registry.errors import Conflict, Invalid, NotFound
from registry.jobs.models import Dataset, Job, JobEvent
from registry.jobs.packing import pack_key
from registry.jobs.schemas import JobRequest
from registry.tenants import quotas
from registry.vera.capabilities import job_problems
from registry.webhooks.outbox import emit

TRANSITIONS = {
    "queued": {"running", "cancelled", "failed"},
    "running": {"succeeded", "failed", "cancelled", "queued"},
    "succeeded": set(),
    "failed": set(),
    "cancelled": set(),
}
TERMINAL = {"succeeded", "failed", "cancelled"}


# Fields added after requests were first hashed: left out while unset, so an
# Idempotency-Key replay of an older request still matches.
_LATER_FIELDS = ("description", "tags", "adapter_description", "adapter_tags")


def _request_sha256(request: JobRequest) -> str:
    body = request.model_dump(mode="json")
    for field in _LATER_FIELDS:
        if not body[field]:
            del body[field]
    canonical = json.dumps(body, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_request(session: Session, tenant_id: str, request: JobRequest) -> list[dict]:
    """Every problem with the request, as per-field errors (empty when it is fine)."""
    errors: list[dict] = []
    dataset = session.scalar(
        select(Dataset).where(Dataset.id == request.dataset_id, Dataset.tenant_id == tenant_id)
    )
    if dataset is None:
        errors.append({"field": "dataset_id", "message": "no such dataset"})
    elif dataset.user_id != request.user_id:
        errors.append({"field": "dataset_id", "message": "dataset belongs to another user"})
    elif dataset.blob_sha256 is None:
        errors.append(
            {"field": "dataset_id", "message": "dataset was purged by retention; upload it again"}
        )
    base = session.scalar(
        select(BaseModel).where(
            BaseModel.id == request.base_model_id, BaseModel.tenant_id == tenant_id
        )
    )
    if base is None:
        errors.append({"field": "base_model_id", "message": "no such base model"})
    projection = session.scalar(
        select(Projection).where(
            Projection.id == request.projection_id, Projection.tenant_id == tenant_id
        )
    )
    if projection is None:
        errors.append({"field": "projection_id", "message": "no such projection"})
    elif base is not None and projection.base_model_id != base.id:
        errors.append({"field": "projection_id", "message": "projection is for another base model"})
        projection = None
    if base is not None and dataset is not None:
        errors.extend(
            job_problems(
                base.capabilities,
                layers=base.layers,
                task=dataset.task,
                target_modules=request.target_modules,
                max_seq_len=request.hyperparameters.max_seq_len,
                projection_dims=(projection.max_d_in, projection.max_d_out) if projection else None,
            )
        )
    return errors


def submit_job(
    session: Session,
    tenant_id: str,
    request: JobRequest,
    *,
    idempotency_key: str | None = None,
    max_attempts: int = 3,
    settings: Settings | None = None,
) -> tuple[Job, bool]:
    """Validate everything, then record a queued job. Returns (job, created). With
    `settings`, the tenant's quotas apply to a new job (not to a replay)."""
    request_sha256 = _request_sha256(request)
    policy = quotas.begin_submit(session, tenant_id, settings) if settings else None
    if idempotency_key:
        existing = _replay(session, tenant_id, idempotency_key, request_sha256)
        if existing is not None:
            return existing, False
    errors = _check_request(session, tenant_id, request)
    if errors:
        raise Invalid(
            "the job request is invalid: "
            + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            details=errors,
        )
    if policy is not None:
        quotas.check_submit(session, tenant_id, request.user_id, policy)
    dataset = session.get(Dataset, request.dataset_id)
    adapter = get_or_create_adapter(
        session,
        tenant_id,
        user_id=request.user_id,
        name=request.adapter_name,
        base_model_id=request.base_model_id,
        projection_id=request.projection_id,
        target_modules=request.target_modules,
        task=dataset.task,
    )
    warm_start_version_id = None
    if request.warm_start:
        warm_start_version_id = session.scalar(
            select(Alias.version_id).where(Alias.adapter_id == adapter.id, Alias.name == "live")
        )
        if warm_start_version_id is None:
            raise Invalid(
                "warm_start needs a live version of this adapter; there is none",
                details=[{"field": "warm_start", "message": "no live version"}],
            )
    hyperparameters = request.hyperparameters.model_dump(mode="json")
    job = Job(
        tenant_id=tenant_id,
        user_id=request.user_id,
        adapter_id=adapter.id,
        dataset_id=dataset.id,
        base_model_id=request.base_model_id,
        projection_id=request.projection_id,
        hyperparameters=hyperparameters,
        warm_start_version_id=warm_start_version_id,
        publish=request.publish,
        queue=request.queue,
        description=request.description or None,
        tags=sorted(set(request.tags)),
        state="queued",
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
        max_attempts=max_attempts,
        pack_key=pack_key(
            base_model_id=request.base_model_id,
            projection_id=request.projection_id,
            target_modules=request.target_modules,
            task=dataset.task,
            hyperparameters=hyperparameters,
            queue=request.queue,
        ),
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        # A concurrent request with the same key committed its job first (PostgreSQL held
        # this insert until then): answer exactly as a replay would.
        existing = idempotency_key and _replay(session, tenant_id, idempotency_key, request_sha256)
        if not existing:
            raise
        return existing, False
    append_job_event(session, job.id, "state", {"state": "queued"})
    _apply_adapter_metadata(session, adapter, request)
    return job, True


def _apply_adapter_metadata(session: Session, adapter, request: JobRequest) -> None:
    """adapter_description / adapter_tags of a new job replace the adapter's (as a PATCH)."""
    changes: dict = {}
    if request.adapter_description is not None:
        changes["description"] = request.adapter_description
    if request.adapter_tags is not None:
        changes["tags"] = request.adapter_tags
    if changes:
        metadata.update(session, adapter, **changes)


def _replay(session: Session, tenant_id: str, key: str, request_sha256: str) -> Job | None:
    """The job an earlier request with this Idempotency-Key made; 409 if its body differed."""
    existing = session.scalar(
        select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
    )
    if existing is not None and existing.request_sha256 != request_sha256:
        raise Conflict(
            "this Idempotency-Key was used for a different request; "
            "send a new key for a new job, or the same body to get the same job back",
            code="idempotency_key_reused",
            details={"job_id": existing.id},
        )
    return existing


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    return get_owned(session, Job, tenant_id, job_id, "job")


def list_jobs(
    session: Session,
    tenant_id: str,
    *,
    user_id: str | None = None,
    state: str | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[Job]:
    """Newest first; `before` is the (created_at, id) of the last job of the prior page."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if user_id is not None:
        query = query.where(Job.user_id == user_id)
    if state is not None:
        query = query.where(Job.state == state)
    if before is not None:
        query = query.where(created_before(Job, before))
    return list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)))


def check_transition(job: Job, new_state: str) -> None:
    if new_state not in TRANSITIONS.get(job.state, set()):
        raise Conflict(
            f"job {job.id} cannot go from {job.state} to {new_state}",
            code="illegal_transition",
            details={"from": job.state, "to": new_state},
        )


def transition_job(session: Session, job: Job, new_state: str, **fields) -> Job:
    """Move a job along the state machine (an illegal move raises) and record the event."""
    check_transition(job, new_state)
    job.state = new_state
    now = utcnow()
    if new_state == "running" and job.started_at is None:
        job.started_at = now
    if new_state in TERMINAL:
        job.finished_at = now
        # An ended job never resumes: its checkpoint goes once this commits (blob_refs).
        note_freed(session, [job.checkpoint_blob_sha256])
        job.checkpoint_blob_sha256, job.checkpoint_step = None, None
    for name, value in fields.items():
        setattr(job, name, value)
    session.flush()
    data = {"state": new_state}
    if job.error_code:
        data.update(
            error_code=job.error_code, error_kind=job.error_kind, error_message=job.error_message
        )
    append_job_event(session, job.id, "state", data)
    if new_state in ("succeeded", "failed"):
        _emit_finished(session, job)
    return job


def _emit_finished(session: Session, job: Job) -> None:
    """The `job.succeeded` / `job.failed` webhook event, in the transaction that ends it."""
    version = session.get(AdapterVersion, job.result_version_id) if job.result_version_id else None
    data = {
        "job_id": job.id,
        "user_id": job.user_id,
        "adapter_id": job.adapter_id,
        "state": job.state,
        "version": version.number if version is not None else None,
    }
    if job.state == "failed":
        data.update(
            error_code=job.error_code, error_kind=job.error_kind, error_message=job.error_message
        )
    # adapter_id: erasing the user removes the deliveries (they name the user).
    emit(session, job.tenant_id, f"job.{job.state}", data, adapter_id=job.adapter_id)


def append_job_event(session: Session, job_id: str, kind: str, data: dict) -> JobEvent:
    """Append with the next per-job sequence number (writers of one job are fenced to one)."""
    last = session.scalar(select(func.max(JobEvent.seq)).where(JobEvent.job_id == job_id))
    event = JobEvent(job_id=job_id, seq=(last or 0) + 1, kind=kind, data=data)
    session.add(event)
    session.flush()
    return event


def list_job_events(
    session: Session, tenant_id: str, job_id: str, *, after_seq: int = 0, limit: int = 200
) -> list[JobEvent]:
    get_job(session, tenant_id, job_id)
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after_seq)
    return list(session.scalars(query.order_by(JobEvent.seq).limit(limit)))


def request_cancel(session: Session, tenant_id: str, job_id: str) -> Job:
    """A queued job is cancelled at once; a running one stops at its next step."""
    # The row lock orders this against a worker's claim of the same job.
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id, Job.tenant_id == tenant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if job is None:
        raise NotFound(f"job {job_id} not found")
    if job.state in TERMINAL:
        raise Conflict(f"job {job_id} already {job.state}", code="job_finished")
    if job.cancel_requested_at is None:
        job.cancel_requested_at = utcnow()
    if job.state == "queued":
        transition_job(session, job, "cancelled")
    else:
        append_job_event(session, job.id, "log", {"message": "cancellation requested"})
    return job


def mark_sent(session: Session, job_id: str) -> None:
    job = session.get(Job, job_id)
    if job is not None:
        job.sent_at = utcnow()
