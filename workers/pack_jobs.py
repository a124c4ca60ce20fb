"""One claimed job inside a pack: its claim, heartbeat state, plan and results, and how its
members join the trainer (from its checkpoint when it has one)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from registry.jobs import lease
from registry.jobs.errors import UserInputError
from workers import job_io
from workers.heartbeat import JobBeat
from workers.members import JobPlan


@dataclass
class PackJob:
    claim: lease.Claim
    spec: job_io.JobSpec
    beat: JobBeat
    limit_s: float
    resend: bool  # no Celery task of its own retries it: the sweeper must
    plan: JobPlan | None = None
    progress: dict = field(default_factory=dict)  # member key → latest Progress
    results: dict = field(default_factory=dict)  # member key → TrainingResult
    failed: dict = field(default_factory=dict)  # member key → its own error (multi-member)
    started: float = field(default_factory=time.monotonic)
    checkpointed_at: float = field(default_factory=time.monotonic)
    checkpointed_step: int = 0
    max_pack_size: int = 1

    @property
    def job_id(self) -> str:
        return self.claim.job_id

    @property
    def step(self) -> int:
        return self.beat.latest.step if self.beat.latest is not None else self.beat.start_step


def add_members(trainer, job: PackJob, warm, saved: dict[str, bytes], unusable) -> bool:
    """Add every member of the job, each from its checkpoint when there is one; all or none
    join. True when they resumed. A checkpoint the trainer refuses (written by other code
    or args) is reported to `unusable(job, exc)` and the job starts over from step 0."""
    added = []
    try:
        for member in job.plan.members:
            checkpoint = saved.get(member.key)
            try:
                trainer.add(
                    member.key,
                    member.examples,
                    member.args,
                    num_labels=job.spec.num_labels,
                    eval_examples=member.eval_examples,
                    warm_start=warm,
                    checkpoint=checkpoint,
                )
            except UserInputError:
                raise
            except Exception as exc:
                if checkpoint is None:
                    raise
                unusable(job, exc)
                for key in added:
                    trainer.remove(key)
                return add_members(trainer, job, warm, {}, unusable)
            added.append(member.key)
    except Exception:
        for key in added:
            trainer.remove(key)
        raise
    return bool(saved)
