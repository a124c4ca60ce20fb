"""Datasets and training jobs: submit, follow (pages or Server-Sent Events), cancel."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from registry.api.deps import DispatcherDep, ReadDep, SessionDep, SettingsDep, StoreDep, TrainDep
from registry.api.pagination import (
    DEFAULT_LIMIT,
    ByCreatedAt,
    Limit,
    Page,
    created_key,
    decode_cursor,
    next_cursor,
)
from registry.api.uploads import spooled_body
from registry.db import after_commit, session_scope
from registry.errors import BadRequest
from registry.input_rules import Int32
from registry.jobs import datasets
from registry.jobs import service as jobs
from registry.jobs.schemas import DatasetOut, JobEventOut, JobOut, JobRequest, Task
from registry.names import UserId

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"])

SSE_POLL_S = 0.5
KEEPALIVE_EVERY = 30  # polls: a comment line every ~15 s keeps proxies from closing
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


@router.post(
    "/v1/datasets",
    status_code=201,
    response_model=DatasetOut,
    responses={409: {"description": "A new user would exceed the tenant's `max_users`."}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {
                    "schema": {"type": "string", "format": "binary"},
                    "example": '{"prompt": "Hi, my order is late.", "completion": "Sorry to'
                    ' hear that! Let me check."}\n{"text": "Thanks for waiting, Alice."}\n',
                }
            },
        }
    },
    summary="Upload a training dataset (JSONL)",
)
async def upload_dataset(
    request: Request,
    principal: TrainDep,
    store: StoreDep,
    settings: SettingsDep,
    user_id: Annotated[UserId, Query()],
    task: Task = Query(),
) -> DatasetOut:
    """Upload a user's JSONL dataset (body). Every line is checked before anything is stored."""
    async with spooled_body(request) as path:

        def store_dataset() -> DatasetOut:
            with session_scope(request.app.state.session_factory) as session:
                row = datasets.create_dataset(
                    session, store, principal.tenant_id, user_id, task, path, settings
                )
                return DatasetOut.model_validate(row)

        return await run_in_threadpool(store_dataset)


@router.get("/v1/datasets", response_model=Page[DatasetOut], summary="List datasets")
def list_datasets(
    principal: ReadDep,
    session: SessionDep,
    user_id: Annotated[UserId | None, Query(description="Only this user's datasets.")] = None,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[DatasetOut]:
    """Datasets, newest first."""
    rows = datasets.list_datasets(
        session,
        principal.tenant_id,
        user_id=user_id,
        before=decode_cursor(cursor, ByCreatedAt),
        limit=limit,
    )
    return Page(
        items=[DatasetOut.model_validate(r) for r in rows],
        next_cursor=next_cursor(rows, limit, created_key),
    )


@router.get("/v1/datasets/{dataset_id}", response_model=DatasetOut, summary="Show a dataset")
def get_dataset(dataset_id: str, principal: ReadDep, session: SessionDep) -> DatasetOut:
    """One dataset's record."""
    return DatasetOut.model_validate(datasets.get_dataset(session, principal.tenant_id, dataset_id))


@router.post(
    "/v1/jobs",
    status_code=202,
    response_model=JobOut,
    responses={
        200: {"model": JobOut, "description": "The job this `Idempotency-Key` made before."},
        409: {
            "description": "The `Idempotency-Key` was used for another body, a quota is "
            "reached, or the adapter is bound to another base model or projection."
        },
    },
    summary="Submit a training job",
)
def submit_job(
    body: JobRequest,
    request: Request,
    response: Response,
    principal: TrainDep,
    session: SessionDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JobOut:
    """Submit a training job for one user. The same Idempotency-Key returns the same job."""
    job, created = jobs.submit_job(
        session,
        principal.tenant_id,
        body,
        idempotency_key=idempotency_key,
        max_attempts=settings.job_max_attempts,
        settings=settings,
    )
    if created:
        factory = request.app.state.session_factory
        after_commit(session, lambda: _send(factory, dispatcher, job.id, job.queue))
    else:
        response.status_code = 200
    return JobOut.model_validate(job)


def _send(factory, dispatcher, job_id: str, queue: str | None) -> None:
    """After commit: send the task, then note it. A failure leaves the job for the sweeper."""
    try:
        dispatcher.send_job(job_id, queue=queue)
    except Exception:  # any broker failure: the job is safe in the database
        log.warning("could not send job %s now; the sweeper will re-send it", job_id, exc_info=True)
        return
    with session_scope(factory) as session:
        jobs.mark_sent(session, job_id)


@router.get("/v1/jobs", response_model=Page[JobOut], summary="List training jobs")
def list_jobs(
    principal: ReadDep,
    session: SessionDep,
    user_id: Annotated[UserId | None, Query()] = None,
    status: str | None = Query(None, description="queued, running, succeeded, failed, cancelled"),
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[JobOut]:
    """Jobs, newest first."""
    if status is not None and status not in JOB_STATES:
        raise BadRequest(f"status must be one of {list(JOB_STATES)}", code="bad_status")
    rows = jobs.list_jobs(
        session,
        principal.tenant_id,
        user_id=user_id,
        state=status,
        before=decode_cursor(cursor, ByCreatedAt),
        limit=limit,
    )
    return Page(
        items=[JobOut.model_validate(r) for r in rows],
        next_cursor=next_cursor(rows, limit, created_key),
    )


@router.get("/v1/jobs/{job_id}", response_model=JobOut, summary="Show a training job")
def get_job(job_id: str, principal: ReadDep, session: SessionDep) -> JobOut:
    """A job's state, progress and result."""
    return JobOut.model_validate(jobs.get_job(session, principal.tenant_id, job_id))


@router.post(
    "/v1/jobs/{job_id}/cancel",
    response_model=JobOut,
    responses={409: {"description": "The job already finished (`job_finished`)."}},
    summary="Cancel a training job",
)
def cancel_job(job_id: str, principal: TrainDep, session: SessionDep) -> JobOut:
    """Cancel: a queued job at once, a running one at its next training step."""
    return JobOut.model_validate(jobs.request_cancel(session, principal.tenant_id, job_id))


def _events(request: Request, tenant_id: str, job_id: str, after: int, limit: int):
    with session_scope(request.app.state.session_factory) as session:
        events = jobs.list_job_events(session, tenant_id, job_id, after_seq=after, limit=limit)
        state = jobs.get_job(session, tenant_id, job_id).state
        return [JobEventOut.model_validate(e) for e in events], state


@router.get(
    "/v1/jobs/{job_id}/events",
    response_model=list[JobEventOut],
    responses={200: {"content": {"text/event-stream": {}}}},
    summary="Read or follow a job's events",
)
async def job_events(
    job_id: str,
    request: Request,
    principal: ReadDep,
    after: Annotated[Int32, Query(description="The last event seq already seen.")] = 0,
    limit: int = Query(200, ge=1, le=1000),
):
    """Events after `after`; with `Accept: text/event-stream`, a live stream that ends when
    the job does."""
    events, state = await run_in_threadpool(
        _events, request, principal.tenant_id, job_id, after, limit
    )
    if "text/event-stream" not in request.headers.get("accept", ""):
        return events
    return StreamingResponse(
        _stream(request, principal.tenant_id, job_id, events, state, after, limit),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(request, tenant_id, job_id, events, state, after, limit):
    idle_polls = 0
    while True:
        for event in events:
            after = event.seq
            payload = json.dumps(event.model_dump(mode="json"))
            yield f"id: {event.seq}\nevent: {event.kind}\ndata: {payload}\n\n"
        if state in jobs.TERMINAL and not events:
            yield "event: end\ndata: {}\n\n"
            return
        if await request.is_disconnected():
            return
        if not events:
            await asyncio.sleep(SSE_POLL_S)
            idle_polls += 1
            if idle_polls % KEEPALIVE_EVERY == 0:
                yield ": keep-alive\n\n"
        events, state = await run_in_threadpool(_events, request, tenant_id, job_id, after, limit)
