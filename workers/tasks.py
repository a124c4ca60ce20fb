"""Celery tasks: thin wrappers that take ids and call plain functions."""

from __future__ import annotations

import logging
import os
import socket
import time
from functools import cache

from celery.signals import worker_shutting_down

from registry.config import get_settings
from registry.db import make_engine, make_sessionmaker
from registry.storage import open_store
from registry.webhooks.sender import prune_finished, send_due
from workers.blob_gc import collect_garbage
from workers.celery_app import (
    BLOB_GC_TASK,
    RETENTION_TASK,
    SWEEP_TASK,
    TRAIN_TASK,
    WEBHOOKS_TASK,
    make_celery,
)
from workers.dispatch import CeleryDispatcher
from workers.retention import apply_retention
from workers.sweeper import sweep
from workers.training import SHUTTING_DOWN, RetryLater, WorkerContext, run_training_job

log = logging.getLogger(__name__)
app = make_celery()

RETRY_BACKOFF_S = (5, 30, 120)


@cache
def context() -> WorkerContext:
    """Per worker process: one engine, one store, one base-model cache."""
    settings = get_settings()
    return WorkerContext(
        settings=settings,
        session_factory=make_sessionmaker(make_engine(settings.database_url)),
        store=open_store(settings),
        worker_name=f"{socket.gethostname()}:{os.getpid()}",
    )


@app.task(name=TRAIN_TASK, bind=True, max_retries=len(RETRY_BACKOFF_S))
def train_task(self, job_id: str) -> str:
    """Run one training job; the database decides whether this copy may."""
    try:
        outcome = run_training_job(context(), job_id)
    except RetryLater as exc:
        countdown = RETRY_BACKOFF_S[min(self.request.retries, len(RETRY_BACKOFF_S) - 1)]
        raise self.retry(exc=exc, countdown=countdown) from exc
    log.info("job %s: %s", job_id, outcome)
    return outcome


@app.task(name=SWEEP_TASK)
def sweep_task() -> dict:
    """Send unsent jobs, re-send jobs the broker lost, recover jobs of dead workers."""
    ctx = context()
    report = sweep(ctx.session_factory, dispatcher(), ctx.settings)
    return {k: len(v) for k, v in vars(report).items()}


@app.task(name=BLOB_GC_TASK)
def blob_gc_task() -> dict:
    """Delete blobs nothing references, past their grace period."""
    ctx = context()
    deleted = collect_garbage(ctx.session_factory, ctx.store, ctx.settings.blob_gc_grace_s)
    return {"blobs_deleted": len(deleted)}


@app.task(name=RETENTION_TASK)
def retention_task() -> dict:
    """Apply every tenant's retention policy: old versions deleted, idle datasets purged."""
    ctx = context()
    report = apply_retention(ctx.session_factory, ctx.settings)
    return {k: len(v) for k, v in vars(report).items()}


# Finished deliveries are pruned once an hour per worker process, not on every 2 s tick.
PRUNE_EVERY_S = 3600.0
_last_prune = float("-inf")


@app.task(name=WEBHOOKS_TASK)
def webhooks_task() -> dict:
    """Send the webhook deliveries that are due (one bounded batch); now and then drop
    finished deliveries past their keeping time."""
    ctx = context()
    report = send_due(ctx.session_factory, ctx.settings)
    global _last_prune
    pruned = 0
    if time.monotonic() - _last_prune > PRUNE_EVERY_S:
        _last_prune = time.monotonic()
        pruned = prune_finished(ctx.session_factory)
    return {k: len(v) for k, v in vars(report).items()} | {"pruned": pruned}


@cache
def dispatcher() -> CeleryDispatcher:
    """One per process: its Celery app keeps a connection pool between sweeps."""
    return CeleryDispatcher(context().settings)


@worker_shutting_down.connect
def _hand_back_on_shutdown(**_: object) -> None:
    """Warm shutdown (SIGTERM, Ctrl-C): the running job stops at its next step and is
    queued again, so a deploy or `up` exiting never waits for a long job to finish."""
    SHUTTING_DOWN.set()
