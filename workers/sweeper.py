"""The periodic sweeper: sends unsent jobs, re-sends jobs the broker lost, recovers dead
workers' jobs. Blob garbage collection runs on its own, slower schedule (workers/blob_gc.py).

A queued job is sent again only when it was never sent, or when the broker lost it (see
registry/dispatch.py): a backlog that no worker takes stays in the broker exactly once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from registry.config import Settings
from registry.db import session_scope, utcnow
from registry.jobs import lease
from registry.jobs.models import Job
from registry.jobs.service import append_job_event, mark_sent

log = logging.getLogger(__name__)

# The API sends a job right after its commit: the sweeper leaves it that long to do so.
UNSENT_GRACE_S = 2.0
RESEND_BATCH = 500


@dataclass
class SweepReport:
    resent: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


def sweep(factory: sessionmaker[Session], dispatcher, settings: Settings) -> SweepReport:
    report = SweepReport()
    _recover_stale(factory, settings, report)
    try:
        _forget_lost_sends(factory, dispatcher)
    except Exception:  # the broker is down: nothing can be sent now; next sweep
        log.warning("sweeper cannot check the broker", exc_info=True)
        return report
    _send_unsent(factory, dispatcher, report)
    return report


def _recover_stale(factory, settings: Settings, report: SweepReport) -> None:
    """Running jobs whose lease ran out (worker died): back to the queue, or failed."""
    now = utcnow()
    with session_scope(factory) as session:
        stale = session.scalars(
            select(Job)
            .where(Job.state == "running", Job.lease_expires_at < now)
            .with_for_update(skip_locked=True)
        ).all()
        for job in stale:
            outcome = lease.fail_unclaimable(session, job.id)
            if outcome == "failed":
                report.failed.append(job.id)
            elif outcome == "cancelled":
                report.cancelled.append(job.id)
            else:
                job.state, job.worker, job.lease_expires_at, job.sent_at = (
                    "queued",
                    None,
                    None,
                    None,
                )
                session.flush()
                append_job_event(
                    session,
                    job.id,
                    "state",
                    {"state": "queued", "reason": "worker lost (heartbeat stale); retrying"},
                )
                report.requeued.append(job.id)


def _forget_lost_sends(factory, dispatcher) -> None:
    """A broker without our marker lost every message sent before (or is new): mark every
    queued job unsent, then leave the marker. Crashing in between only repeats this."""
    if dispatcher.messages_intact():
        return
    with session_scope(factory) as session:
        lost = session.execute(
            update(Job)
            .where(Job.state == "queued", Job.sent_at.is_not(None))
            .values(sent_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount
    if lost:
        log.warning(
            "the broker lost its messages (restart, flush or new broker): "
            "re-sending %d queued job(s)",
            lost,
        )
    dispatcher.mark_intact()


def _send_unsent(factory, dispatcher, report: SweepReport) -> None:
    grace = utcnow() - timedelta(seconds=UNSENT_GRACE_S)
    with session_scope(factory) as session:
        rows = session.execute(
            select(Job.id, Job.queue)
            .where(Job.state == "queued", Job.sent_at.is_(None), Job.created_at < grace)
            .order_by(Job.created_at)
            .limit(RESEND_BATCH)
        ).all()
    for job_id, queue in rows:
        try:
            dispatcher.send_job(job_id, queue=queue)
        except Exception:  # the broker is still down: try again next sweep
            log.warning("sweeper could not re-send job %s", job_id, exc_info=True)
            return
        with session_scope(factory) as session:
            mark_sent(session, job_id)
        report.resent.append(job_id)
