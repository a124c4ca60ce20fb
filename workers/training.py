"""A training task, end to end, as a plain function (the Celery task is a thin wrapper):
claim the fairest queued job of the task's queue (fair share across tenants: the task's
message is a wake-up, registry/jobs/fair_share.py) and up to VERA_PACK_MAX_JOBS - 1
compatible queued jobs, train them as one pack (workers/pack_runner.py), and report what
happened to the job the task was for."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

import registry.models  # noqa: F401  (every mapper, so foreign keys resolve)
from registry.blob_refs import remove_freed_on_commit
from registry.config import Settings
from registry.db import new_id, session_scope
from registry.jobs import lease
from registry.jobs.packing import start_pack
from workers.heartbeat import SHUTTING_DOWN
from workers.job_io import runtime_limit
from workers.model_cache import ModelCache
from workers.outcomes import TRACEBACK_CHARS, RetryLater

__all__ = [
    "SHUTTING_DOWN",
    "TRACEBACK_CHARS",
    "RetryLater",
    "WorkerContext",
    "run_training_job",
    "runtime_limit",
]


@dataclass
class WorkerContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    store: object
    models: ModelCache | None = None
    worker_name: str = "worker"

    def __post_init__(self) -> None:
        # Blobs a transaction stops referencing (an ended job's checkpoint, a deleted
        # version) go right after its commit; blob GC is the fallback.
        remove_freed_on_commit(self.session_factory, self.store)
        if self.models is None:
            self.models = ModelCache(self.settings, self.store)


def run_training_job(ctx: WorkerContext, job_id: str) -> str:
    """Claim the job (with companions), train the pack, return what happened to this job.
    Raises RetryLater when this job went back to the queue for a system error."""
    from workers.pack_runner import PackRunner

    pack_id = new_id()
    with session_scope(ctx.session_factory) as session:
        claims = lease.claim_next(
            session,
            job_id,
            ctx.worker_name,
            ctx.settings.heartbeat_stale_s,
            pack_id=pack_id,
            room=ctx.settings.pack_max_jobs,
        )
        if claims:
            start_pack(session, pack_id, ctx.worker_name)
    claimed = {claim.job_id for claim in claims}
    if job_id not in claimed:  # taken, ended, or waiting its turn (fair share)
        with session_scope(ctx.session_factory) as session:
            outcome = lease.fail_unclaimable(session, job_id)
        if not claims:  # nothing claimable: this message was a spare wake-up
            return outcome or "not_claimed"
    runner = PackRunner(ctx, pack_id, job_id)
    outcomes = runner.run(claims)
    if job_id not in claimed:
        return f"not_claimed; trained {', '.join(sorted(outcomes))} instead"
    outcome = outcomes.get(job_id, "lease_lost")
    if outcome == "retry":
        raise RetryLater(runner.retry_reason)
    return outcome
