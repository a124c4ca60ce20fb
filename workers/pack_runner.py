"""The loop over one PackedTrainer: claimed jobs join, step together, and leave one by one.

Every job keeps its own lease, fencing token, heartbeat, events, cancel, checkpoint and end;
the pack is an execution detail, never a unit of failure: one job's cancel, bad data, lost
lease or storage error ends that job alone, at a step boundary. A pack of one (VERA_PACK_MAX_JOBS
=1) is today's one-job-at-a-time worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from registry.db import session_scope
from registry.jobs import lease
from registry.jobs.errors import UserInputError
from workers import checkpoints, job_io
from workers.heartbeat import SHUTTING_DOWN, PackHeartbeat
from workers.members import plan_job
from workers.model_cache import ModelSpec
from workers.outcomes import Cancelled, record_failure
from workers.pack_jobs import PackJob, add_members

log = logging.getLogger(__name__)


class PackRunner:
    def __init__(self, ctx, pack_id: str, task_job_id: str) -> None:
        # The job the Celery task was sent for: only its own retry re-sends it (fair share
        # may have claimed other jobs with that message, even without it).
        self.ctx, self.pack_id, self.task_job_id = ctx, pack_id, task_job_id
        self.settings = ctx.settings
        self.jobs: dict[str, PackJob] = {}
        self.member_job: dict[str, str] = {}  # member key → job id
        self.outcomes: dict[str, str] = {}
        self.pack_key: str | None = None
        self.trainer = None
        self.model = self.tokenizer = None
        self._filled_at = float("-inf")  # jobs queued while the model loaded join at once
        self.retry_reason = ""

    # -- the whole run ---------------------------------------------------------------------

    def run(self, claims: list[lease.Claim]) -> dict[str, str]:
        """Train the claimed jobs (and any that join) to their ends; job id → outcome."""
        with PackHeartbeat(self.ctx, self.pack_id) as self.heartbeat:
            pending = self._track(claims)
            lead = self.jobs[claims[0].job_id].spec
            self.pack_key = lead.job.pack_key
            try:
                self._open(lead)
            except Exception as exc:  # the model or the projection: every job hits it
                for job in pending:
                    self._end(job, exc)
                return self.outcomes
            with self.trainer:
                for job in pending:
                    self._join(job)
                self._loop()
        return self.outcomes

    def _open(self, lead: job_io.JobSpec) -> None:
        from registry.vera.packed import PackedTrainer

        self.model, self.tokenizer = self.ctx.models.get(
            ModelSpec.of(lead.base), lead.dataset.task, lead.num_labels
        )
        self.trainer = PackedTrainer(
            self.model,
            job_io.vera_config(lead),
            expected_fingerprint=lead.projection.fingerprint,
            max_tokens_per_step=self.settings.pack_max_tokens,
            tokenizer=self.tokenizer,
        )

    def _loop(self) -> None:
        while self.jobs:
            if SHUTTING_DOWN.is_set():
                self._hand_back_all()
                return
            self._check_stops()
            self._checkpoint_due()
            self._fill()
            if not self.jobs:
                return
            try:
                report = self.trainer.step()
            except Exception as exc:  # not one member's data: the pack's own failure
                for job in list(self.jobs.values()):
                    self._end(job, exc)
                return
            if report is None:
                error = RuntimeError("the pack had nothing to train for these jobs")
                for job in list(self.jobs.values()):
                    self._end(job, error)
                return
            self.heartbeat.count(report)
            self._apply(report)

    def _apply(self, report) -> None:
        for job in self.jobs.values():
            job.max_pack_size = max(job.max_pack_size, len(self.jobs))
        for key, progress in report.progress.items():
            job = self.jobs.get(self.member_job.get(key))
            if job is not None:
                job.progress[key] = progress
                job.beat.on_progress(min(job.progress.values(), key=lambda p: p.step))
        for key, exc in report.failed.items():
            job = self.jobs.get(self.member_job.get(key))
            if job is None:
                continue
            if job.plan.single:
                self._end(job, exc)
            else:  # one candidate of several: the others may still give the job a result
                job.failed[key] = exc
                self._maybe_done(job)
        for key, result in report.finished.items():
            job = self.jobs.get(self.member_job.get(key))
            if job is not None:
                job.results[key] = result
                self._maybe_done(job)

    def _maybe_done(self, job: PackJob) -> None:
        if len(job.results) + len(job.failed) == len(job.plan.members):
            self._succeed(job)

    # -- joining -------------------------------------------------------------------------

    def _track(self, claims: list[lease.Claim]) -> list[PackJob]:
        with session_scope(self.ctx.session_factory) as session:
            specs = [job_io.load_spec(session, claim.job_id) for claim in claims]
        jobs = []
        for claim, spec in zip(claims, specs, strict=True):
            limit = job_io.runtime_limit(
                self.settings, spec.job.hyperparameters.get("max_runtime_s")
            )
            beat = self.heartbeat.track(claim, limit)
            job = PackJob(claim, spec, beat, limit, resend=claim.job_id != self.task_job_id)
            self.jobs[claim.job_id] = job
            jobs.append(job)
        return jobs

    def _join(self, job: PackJob) -> None:
        """Add the job's members to the trainer; a job that cannot join ends alone."""
        try:
            spec = job.spec
            job_io.check_fits(self.model, spec)
            rows = job_io.examples(self.ctx.store, spec, self.settings)
            job.plan = plan_job(spec, job_io.training_args(spec), rows)
            warm = job_io.warm_start_vectors(self.ctx.store, spec)
            saved = self._saved_checkpoint(job)
            resumed = add_members(self.trainer, job, warm, saved, self._checkpoint_unusable)
            self.member_job.update(dict.fromkeys((m.key for m in job.plan.members), job.job_id))
        except Exception as exc:
            self._end(job, exc)
            return
        if resumed:
            step = job.spec.job.checkpoint_step
            job.beat.start_step = job.checkpointed_step = step
            self._event(
                job,
                "log",
                {
                    "message": f"resumed from its checkpoint at step {step}",
                    "resumed_from_step": step,
                },
            )

    def _saved_checkpoint(self, job: PackJob) -> dict[str, bytes]:
        sha256 = job.spec.job.checkpoint_blob_sha256
        if sha256 is None:
            return {}
        try:
            return checkpoints.load(self.ctx.store, sha256)
        except Exception as exc:  # unreadable: train from the start rather than not at all
            self._checkpoint_unusable(job, exc)
            return {}

    def _checkpoint_unusable(self, job: PackJob, exc: Exception) -> None:
        log.warning("job %s: checkpoint unusable, training from step 0", job.job_id, exc_info=exc)
        message = f"its checkpoint could not be used ({type(exc).__name__}); training from step 0"
        self._event(job, "log", {"message": message})

    def _fill(self) -> None:
        """Continuous batching: claim more compatible queued jobs while the pack has room."""
        room = self.settings.pack_max_jobs - len(self.jobs)
        now = time.monotonic()
        if (
            self.pack_key is None
            or room <= 0
            or now - self._filled_at < self.settings.heartbeat_interval_s
        ):
            return
        self._filled_at = now
        try:
            with session_scope(self.ctx.session_factory) as session:
                claims = lease.claim_companions(
                    session,
                    self.pack_key,
                    self.ctx.worker_name,
                    self.settings.heartbeat_stale_s,
                    pack_id=self.pack_id,
                    limit=room,
                    pack_size=len(self.jobs),
                )
        except Exception:  # a database blip: the pack goes on as it is
            log.warning("pack %s: could not claim more jobs", self.pack_id, exc_info=True)
            return
        try:
            joined = self._track(claims)
        except Exception:  # their leases lapse and the sweeper queues them again
            log.warning("pack %s: could not load the jobs it claimed", self.pack_id, exc_info=True)
            return
        for job in joined:
            self._join(job)

    # -- leaving -------------------------------------------------------------------------

    def _check_stops(self) -> None:
        for job in list(self.jobs.values()):
            beat = job.beat
            if beat.lost:  # another copy owns it now: stop without writing anything
                self._drop(job, "lease_lost")
            elif beat.cancel_requested:
                self._end(job, Cancelled())
            elif beat.timed_out:
                self._end(
                    job,
                    UserInputError(
                        f"the job ran past its limit of {job.limit_s:.0f} s at step {job.step}; "
                        "raise hyperparameters.max_runtime_s or train fewer steps"
                    ),
                )

    def _leave(self, job: PackJob) -> None:
        """Out of the trainer (before the next step) and out of the heartbeat."""
        for key in [k for k, j in self.member_job.items() if j == job.job_id]:
            if self.trainer is not None and key in self.trainer.members:
                self.trainer.remove(key)
            del self.member_job[key]
        self.heartbeat.untrack(job.job_id)
        self.jobs.pop(job.job_id, None)

    def _drop(self, job: PackJob, outcome: str) -> None:
        self._leave(job)
        self._outcome(job, outcome)

    def _outcome(self, job: PackJob, outcome: str) -> None:
        self.outcomes[job.job_id] = outcome
        log.info("job %s (pack %s): %s", job.job_id, self.pack_id, outcome)

    def _end(self, job: PackJob, exc: BaseException) -> None:
        self._leave(job)
        self._fail(job, exc)

    def _fail(self, job: PackJob, exc: BaseException) -> None:
        self._outcome(job, record_failure(self.ctx, job.claim, exc, resend=job.resend))
        if self.outcomes[job.job_id] == "retry" and job.job_id == self.task_job_id:
            self.retry_reason = f"{type(exc).__name__}: {exc}"

    def _succeed(self, job: PackJob) -> None:
        self.heartbeat.beat(job.beat)  # its last step's progress, however short the run
        self._leave(job)
        info = None
        try:
            result, extra = job.plan.choose(job.results, job.failed)
            metrics = {k: v for k, v in result.metrics.items() if isinstance(v, int | float | str)}
            metrics.update(extra)  # e.g. learning_rate "auto": the rate picked, every candidate
            metrics.update(
                wall_seconds=round(time.monotonic() - job.started, 3),
                # Wall-clock marks for latency figures (submit → first step, last step → live).
                first_step_at=job.beat.first_step_at,
                last_step_at=job.beat.last_step_at,
                pack_id=self.pack_id,
                pack_size=job.max_pack_size,
            )
            info = self.ctx.store.put(job_io.adapter_blob(job.spec, result.vectors))
            with session_scope(self.ctx.session_factory) as session:
                version = lease.finish_success(
                    session,
                    job.claim,
                    blob_sha256=info.sha256,
                    size_bytes=info.size,
                    metrics=metrics,
                )
            self._outcome(job, f"succeeded:v{version.number}")
        except lease.LeaseLost:
            checkpoints.discard_if_erased(self.ctx, job.job_id, info.sha256 if info else None)
            self._outcome(job, "lease_lost")
        except Exception as exc:
            self._fail(job, exc)

    # -- checkpoints -----------------------------------------------------------------------

    def _checkpoint_due(self) -> None:
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if now - job.checkpointed_at >= self.settings.checkpoint_interval_s:
                job.checkpointed_at = now
                try:
                    self._checkpoint(job)
                except lease.LeaseLost:
                    self._drop(job, "lease_lost")
                except Exception:  # storage blip: the job goes on, the next one may work
                    log.warning("job %s: checkpoint failed", job.job_id, exc_info=True)

    def _checkpoint(self, job: PackJob, then: Callable | None = None) -> None:
        """Checkpoint the job if it stepped since its last one, then `then(session)`."""
        step, members = job.step, None
        if step > job.checkpointed_step:
            active = [k for k in job.progress if k in self.trainer.members]
            members = {k: self.trainer.checkpoint(k) for k in active}
        checkpoints.save(self.ctx, job.claim, members, step, then)
        job.checkpointed_step = max(job.checkpointed_step, step)

    def _hand_back_all(self) -> None:
        """Warm shutdown: every job checkpoints and goes back to the queue, not counted as an
        attempt; whichever worker claims it next resumes from that step."""
        for job in list(self.jobs.values()):
            reason = f"worker shut down at step {job.step}; it resumes from there"
            try:
                self._checkpoint(job, lambda s, j=job, r=reason: lease.hand_back(s, j.claim, r))
                self._drop(job, "handed_back")
            except lease.LeaseLost:
                self._drop(job, "lease_lost")
            except Exception as exc:
                self._end(job, exc)

    def _event(self, job: PackJob, kind: str, data: dict) -> None:
        try:
            with session_scope(self.ctx.session_factory) as session:
                lease.record_event(session, job.claim, kind, data)
        except lease.LeaseLost:
            job.beat.lost = True
