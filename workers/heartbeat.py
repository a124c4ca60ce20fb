"""One thread that keeps every claim of a pack alive: it extends each job's lease, writes its
progress and events, reads its cancel flag and notices a lease taken over — per job, so a
long step or a slow model load never looks like a dead worker, and one job's news never
touches another's. It also adds the pack's step counters to its row (for /metrics)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from registry.db import session_scope
from registry.jobs import lease
from registry.jobs.packing import record_pack

log = logging.getLogger(__name__)

# Set when this worker process begins a warm shutdown (workers/tasks.py): the running pack
# checkpoints its jobs at the next step and gives them back to the queue instead of holding
# the shutdown up.
SHUTTING_DOWN = threading.Event()


@dataclass
class JobBeat:
    """What the heartbeat knows of one claimed job, and what it found out."""

    claim: lease.Claim
    deadline: float  # time.monotonic() past which the job ran too long
    joined_at: float = field(default_factory=time.monotonic)
    start_step: int = 0  # a resumed job starts at its checkpoint's step
    latest: object | None = None  # registry.vera.train.Progress of its latest step
    first_step_at: float | None = None  # wall clock, for latency figures
    last_step_at: float | None = None
    cancel_requested: bool = False
    lost: bool = False
    _recorded_step: int = -1

    def on_progress(self, progress) -> None:
        now = time.time()
        self.first_step_at = self.first_step_at or now
        self.last_step_at = now
        self.latest = progress

    @property
    def timed_out(self) -> bool:
        return time.monotonic() > self.deadline

    def progress_data(self) -> dict:
        progress = self.latest
        done = progress.step - self.start_step
        remaining = max(0, progress.total_steps - progress.step)
        elapsed = time.monotonic() - self.joined_at
        eta = elapsed / done * remaining if done > 0 else None
        return {
            "step": progress.step,
            "total_steps": progress.total_steps,
            "loss": round(float(progress.loss), 6),
            "tokens_per_second": round(float(progress.tokens_per_second), 1),
            "eta_s": None if eta is None else round(eta, 1),
        }


@dataclass
class PackStats:
    """Step counters since the last flush; the runner adds, the heartbeat flushes."""

    size: int = 0
    max_size: int = 0
    steps: int = 0
    rows: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def add(self, report) -> None:
        self.steps += 1
        self.rows += report.rows
        self.tokens += report.tokens
        self.seconds += report.seconds

    def take(self) -> dict:
        counts = dict(
            size=self.size,
            max_size=self.max_size,
            steps=self.steps,
            rows=self.rows,
            tokens=self.tokens,
            step_seconds=self.seconds,
        )
        self.steps, self.rows, self.tokens, self.seconds = 0, 0, 0, 0.0
        return counts


class PackHeartbeat:
    def __init__(self, ctx, pack_id: str) -> None:
        self.ctx, self.pack_id = ctx, pack_id
        self.jobs: dict[str, JobBeat] = {}
        self.stats = PackStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{pack_id}", daemon=True)

    def __enter__(self) -> PackHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.flush_stats(finished=True)

    def track(self, claim: lease.Claim, max_runtime_s: float) -> JobBeat:
        beat = JobBeat(claim, deadline=time.monotonic() + max_runtime_s)
        with self._lock:
            self.jobs[claim.job_id] = beat
            self._resize()
        return beat

    def untrack(self, job_id: str) -> None:
        with self._lock:
            self.jobs.pop(job_id, None)
            self._resize()

    def count(self, report) -> None:
        """Add one packed step (a StepReport) to the pack's counters."""
        with self._lock:
            self.stats.add(report)

    def _resize(self) -> None:
        self.stats.size = len(self.jobs)
        self.stats.max_size = max(self.stats.max_size, self.stats.size)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                beats = list(self.jobs.values())
            for beat in beats:
                self.beat(beat)
            self.flush_stats()
            self._stop.wait(self.ctx.settings.heartbeat_interval_s)

    def beat(self, beat: JobBeat) -> None:
        """Extend the job's lease, record its progress; note a cancel or a lost lease."""
        progress = beat.latest
        try:
            with session_scope(self.ctx.session_factory) as session:
                kwargs = {"pack_size": self.stats.size}
                if progress is not None:
                    kwargs.update(
                        step=progress.step,
                        total_steps=progress.total_steps,
                        progress=progress.step / max(1, progress.total_steps),
                    )
                beat.cancel_requested = lease.heartbeat(
                    session, beat.claim, self.ctx.settings.heartbeat_stale_s, **kwargs
                )
                if progress is not None and progress.step != beat._recorded_step:
                    beat._recorded_step = progress.step
                    data = beat.progress_data() | {
                        "pack_id": self.pack_id,
                        "pack_size": self.stats.size,
                    }
                    lease.record_event(session, beat.claim, "progress", data)
        except lease.LeaseLost:
            beat.lost = True
        except Exception:  # a database blip: the next beat tries again
            log.warning("heartbeat for job %s failed", beat.claim.job_id, exc_info=True)

    def flush_stats(self, finished: bool = False) -> None:
        with self._lock:
            counts = self.stats.take()
        try:
            with session_scope(self.ctx.session_factory) as session:
                record_pack(session, self.pack_id, **counts, finished=finished)
        except Exception:  # counters only: never worth failing a job over
            log.warning("pack %s: could not record its counters", self.pack_id, exc_info=True)
