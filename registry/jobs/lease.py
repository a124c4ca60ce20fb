"""The worker side of a job: a lease with a fencing token owns every write.

Celery may deliver a task twice (Redis redelivers after the visibility timeout even while
the first copy runs), so a task must claim the job first. A claim raises `lease_token`;
every later write is conditional on still holding that token, so an older copy that lost
its lease can never write progress, a version or a final state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from registry.adapters import metadata
from registry.adapters import service as adapters
from registry.adapters.models import Adapter, AdapterVersion
from registry.blob_refs import note_freed
from registry.db import utcnow
from registry.jobs import fair_share
from registry.jobs.models import Job
from registry.jobs.service import append_job_event, transition_job


class LeaseLost(Exception):
    """This copy of the task no longer owns the job: stop without writing anything."""


@dataclass(frozen=True)
class Claim:
    job_id: str
    token: int
    attempt: int


def _take(session: Session, job_id: str, worker: str, lease_s: float, pack_id: str) -> Claim | None:
    """The conditional UPDATE that claims a job and raises its fencing token."""
    now = utcnow()
    claimable = or_(
        Job.state == "queued",
        and_(Job.state == "running", Job.lease_expires_at < now),
    )
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            claimable,
            Job.cancel_requested_at.is_(None),
            Job.attempts < Job.max_attempts,
        )
        .values(
            state="running",
            lease_token=Job.lease_token + 1,
            attempts=Job.attempts + 1,
            worker=worker,
            heartbeat_at=now,
            lease_expires_at=now + timedelta(seconds=lease_s),
            pack_id=pack_id,
        )
        .returning(Job.lease_token, Job.attempts, Job.started_at)
        .execution_options(synchronize_session=False)
    ).first()
    if result is None:
        return None
    token, attempt, started_at = result
    if started_at is None:
        session.execute(update(Job).where(Job.id == job_id).values(started_at=now))
    return Claim(job_id=job_id, token=token, attempt=attempt)


def _announce(
    session: Session, claims: list[Claim], worker: str, pack_id: str, pack_size: int
) -> None:
    """The 'running' event of each new claim: which worker, which pack, how many jobs in it."""
    for claim in claims:
        session.execute(
            update(Job)
            .where(_owned(claim.job_id, claim.token))
            .values(pack_size=pack_size)
            .execution_options(synchronize_session=False)
        )
        data = {
            "state": "running",
            "attempt": claim.attempt,
            "worker": worker,
            "pack_id": pack_id,
            "pack_size": pack_size,
        }
        append_job_event(session, claim.job_id, "state", data)


def claim_pack(
    session: Session, job_id: str, worker: str, lease_s: float, *, pack_id: str, room: int
) -> list[Claim]:
    """Take the job and up to `room - 1` queued jobs that may train with it (same pack key),
    each with its own lease and fencing token. Empty when the job itself is not ours."""
    lead = _take(session, job_id, worker, lease_s, pack_id)
    return _pack_around(session, lead, worker, lease_s, pack_id, room)


def claim_next(
    session: Session, job_id: str, worker: str, lease_s: float, *, pack_id: str, room: int
) -> list[Claim]:
    """What a train message for `job_id` claims: the fairest claimable job of its queue
    (registry/jobs/fair_share.py) as the lead, with companions; the message's own job
    when none is free. Empty: nothing claimable (a spare wake-up).

    No queued job is left without a message: per queue, every queued job has had one
    message sent (or is unsent, and the sweeper sends it), every claim spends at most one
    message, and a message is spent without a claim only when no claimable job of its
    queue was free, each being claimed by another worker at that moment."""
    row = session.execute(select(Job.queue).where(Job.id == job_id)).first()
    if row is None:  # deleted since it was sent
        return []
    for candidate in fair_share.lead_order(session, row.queue):
        if _lock_free(session, [candidate]):
            lead = _take(session, candidate, worker, lease_s, pack_id)
            if lead is not None:
                return _pack_around(session, lead, worker, lease_s, pack_id, room)
    return claim_pack(session, job_id, worker, lease_s, pack_id=pack_id, room=room)


def _pack_around(session, lead: Claim | None, worker, lease_s, pack_id, room) -> list[Claim]:
    if lead is None:
        return []
    key = session.scalar(select(Job.pack_key).where(Job.id == lead.job_id))
    claims = [lead]
    if key is not None and room > 1:
        claims += _take_companions(session, key, worker, lease_s, pack_id, room - 1)
    _announce(session, claims, worker, pack_id, len(claims))
    return claims


def claim_companions(
    session: Session,
    key: str,
    worker: str,
    lease_s: float,
    *,
    pack_id: str,
    limit: int,
    pack_size: int,
) -> list[Claim]:
    """Up to `limit` more queued jobs with this pack key for a pack of `pack_size` jobs now
    (continuous batching: they join at the next step), while fair share lets the pack grow."""
    grow = limit > 0 and fair_share.pack_may_grow(session, key)
    claims = _take_companions(session, key, worker, lease_s, pack_id, limit) if grow else []
    _announce(session, claims, worker, pack_id, pack_size + len(claims))
    return claims


def _take_companions(
    session: Session, key: str, worker: str, lease_s: float, pack_id: str, limit: int
) -> list[Claim]:
    order = fair_share.companion_order(session, key, limit)
    free = _lock_free(session, order)
    claims: list[Claim] = []
    for job_id in (job_id for job_id in order if job_id in free):
        claim = _take(session, job_id, worker, lease_s, pack_id)
        if claim is not None:
            claims.append(claim)
        if len(claims) == limit:
            break
    return claims


def _lock_free(session: Session, job_ids: list[str]) -> set[str]:
    """Lock those of the queued jobs no other worker is claiming right now. PostgreSQL skips
    rows another transaction holds instead of waiting for them; SQLite has one writer at a
    time, so there the conditional UPDATE of `_take` is enough."""
    if not job_ids:
        return set()
    return set(
        session.scalars(
            select(Job.id)
            .where(Job.id.in_(job_ids), Job.state == "queued")
            .with_for_update(skip_locked=True)
        )
    )


def _owned(job_id: str, token: int):
    return and_(Job.id == job_id, Job.lease_token == token, Job.state == "running")


def heartbeat(
    session: Session,
    claim: Claim,
    lease_s: float,
    *,
    step: int | None = None,
    total_steps: int | None = None,
    progress: float | None = None,
    pack_size: int | None = None,
) -> bool:
    """Extend the lease and record progress (and the size of its pack now). Returns True when
    cancellation was requested. Raises LeaseLost when another copy took the job."""
    now = utcnow()
    values: dict = {"heartbeat_at": now, "lease_expires_at": now + timedelta(seconds=lease_s)}
    if step is not None:
        values.update(step=step, total_steps=total_steps, progress=progress)
    if pack_size is not None:
        values.update(pack_size=pack_size)
    result = session.execute(
        update(Job)
        .where(_owned(claim.job_id, claim.token))
        .values(**values)
        .returning(Job.cancel_requested_at)
        .execution_options(synchronize_session=False)
    ).first()
    if result is None:
        raise LeaseLost(f"job {claim.job_id}: lease {claim.token} was taken over")
    return result[0] is not None


def record_event(session: Session, claim: Claim, kind: str, data: dict) -> None:
    """Append an event only while holding the lease."""
    _lock_owned(session, claim)
    append_job_event(session, claim.job_id, kind, data)


def _lock_owned(session: Session, claim: Claim) -> Job:
    job = session.scalar(
        select(Job)
        .where(_owned(claim.job_id, claim.token))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if job is None:
        raise LeaseLost(f"job {claim.job_id}: lease {claim.token} was taken over")
    return job


def save_checkpoint(session: Session, claim: Claim, *, blob_sha256: str, step: int) -> None:
    """Point the job at its latest checkpoint (stored already); only while holding the lease.
    The one it replaces goes from the store once this commits (it holds the user's vectors)."""
    previous = session.scalar(
        select(Job.checkpoint_blob_sha256).where(_owned(claim.job_id, claim.token))
    )
    result = session.execute(
        update(Job)
        .where(_owned(claim.job_id, claim.token))
        .values(checkpoint_blob_sha256=blob_sha256, checkpoint_step=step)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise LeaseLost(f"job {claim.job_id}: lease {claim.token} was taken over")
    if previous != blob_sha256:
        note_freed(session, [previous])


def finish_success(
    session: Session, claim: Claim, *, blob_sha256: str, size_bytes: int, metrics: dict
) -> AdapterVersion:
    """In the caller's one transaction: the version, the job's success, and `live` moved."""
    job = _lock_owned(session, claim)
    if job.publish:
        # Locks in the order every writer takes them (job, feed, then adapter rows): an API
        # publish or a deletion on this adapter at the same moment waits, never deadlocks.
        adapters._lock_feed(session)
    adapter = session.get(Adapter, job.adapter_id)
    version = adapters.create_version(
        session,
        adapter,
        blob_sha256=blob_sha256,
        size_bytes=size_bytes,
        metrics=metrics,
        job_id=job.id,
        parent_version_id=job.warm_start_version_id,
    )
    if job.description or job.tags:
        metadata.update(session, adapter, version, description=job.description, tags=job.tags)
    if job.publish:
        adapters.set_alias(
            session,
            job.tenant_id,
            adapter.id,
            "live",
            version.number,
            reason=f"published by job {job.id}",
        )
    _finish(session, job, "succeeded", result_version_id=version.id, progress=1.0)
    append_job_event(session, job.id, "metrics", metrics)
    return version


def finish_failure(session: Session, claim: Claim, *, code: str, kind: str, message: str) -> None:
    job = _lock_owned(session, claim)
    _finish(session, job, "failed", error_code=code, error_kind=kind, error_message=message[:4000])


def finish_cancelled(session: Session, claim: Claim) -> None:
    _finish(session, _lock_owned(session, claim), "cancelled")


def release(session: Session, claim: Claim, reason: str, *, resend: bool = False) -> None:
    """Give the job back to the queue (an infrastructure error another attempt may not hit).
    The task's own retry re-sends it; `resend`: no task will (a job that joined another
    job's pack), so the sweeper does."""
    job = _lock_owned(session, claim)
    job.state, job.worker, job.lease_expires_at = "queued", None, None
    job.sent_at = None if resend else utcnow()
    session.flush()
    append_job_event(session, job.id, "state", {"state": "queued", "reason": reason[:1000]})


def hand_back(session: Session, claim: Claim, reason: str) -> None:
    """The worker is shutting down: back to the queue at once, and this claim not counted
    as an attempt (the job did nothing wrong). The sweeper sends it again."""
    job = _lock_owned(session, claim)
    job.state, job.worker, job.lease_expires_at, job.sent_at = "queued", None, None, None
    job.attempts = max(0, job.attempts - 1)
    session.flush()
    append_job_event(session, job.id, "state", {"state": "queued", "reason": reason[:1000]})


def _finish(session: Session, job: Job, state: str, **values) -> None:
    values.setdefault("lease_expires_at", None)
    transition_job(session, job, state, **values)


def fail_unclaimable(session: Session, job_id: str) -> str | None:
    """A job that cannot be claimed any more: cancel it if asked, fail it when out of attempts.
    Returns the state it was put in, if any."""
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if job is None or job.state not in ("queued", "running"):
        return None
    lease_live = job.state == "running" and job.lease_expires_at and job.lease_expires_at > utcnow()
    if lease_live:
        return None
    if job.cancel_requested_at is not None:
        _finish(session, job, "cancelled")
        return "cancelled"
    if job.attempts >= job.max_attempts:
        _finish(
            session,
            job,
            "failed",
            error_code="too_many_attempts",
            error_kind="system",
            error_message=f"the job was started {job.attempts} times without finishing "
            "(worker lost each time?); see its events",
        )
        return "failed"
    return None
