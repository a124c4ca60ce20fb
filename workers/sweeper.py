"""The periodic sweeper: re-sends lost jobs, recovers dead workers' jobs, collects garbage."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, or_, select, union
from sqlalchemy.orm import Session, sessionmaker

from registry.adapters.models import AdapterVersion
from registry.base_models.models import BaseModelFile, ModelFileUpload
from registry.config import Settings
from registry.db import session_scope, utcnow
from registry.jobs import lease
from registry.jobs.models import Dataset, Job
from registry.jobs.service import append_job_event, mark_sent

log = logging.getLogger(__name__)

# A job sent this long ago and still queued was lost by the broker (or never reached it).
RESEND_AFTER_S = 60.0
UNSENT_GRACE_S = 2.0


@dataclass
class SweepReport:
    resent: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    blobs_deleted: list[str] = field(default_factory=list)


def sweep(
    factory: sessionmaker[Session],
    dispatcher,
    settings: Settings,
    store=None,
    *,
    resend_after_s: float = RESEND_AFTER_S,
) -> SweepReport:
    report = SweepReport()
    _recover_stale(factory, settings, report)
    _resend_queued(factory, dispatcher, report, resend_after_s)
    if store is not None:
        collect_garbage(factory, store, settings.blob_gc_grace_s, report)
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


def _resend_queued(factory, dispatcher, report: SweepReport, resend_after_s: float) -> None:
    now = utcnow()
    with session_scope(factory) as session:
        rows = session.execute(
            select(Job.id, Job.queue)
            .where(
                Job.state == "queued",
                or_(
                    and_(
                        Job.sent_at.is_(None),
                        Job.created_at < now - timedelta(seconds=UNSENT_GRACE_S),
                    ),
                    Job.sent_at < now - timedelta(seconds=resend_after_s),
                ),
            )
            .limit(500)
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


def collect_garbage(factory, store, grace_s: float, report: SweepReport) -> None:
    """Delete blobs that no version, dataset or base-model file references and that are older
    than the grace period (a blob is written before the row that references it commits)."""
    with session_scope(factory) as session:
        referenced = set(
            session.scalars(
                union(
                    select(AdapterVersion.blob_sha256),
                    select(Dataset.blob_sha256),
                    select(BaseModelFile.sha256),
                    select(ModelFileUpload.sha256),  # uploaded, manifest still to come
                )
            )
        )
    cutoff = utcnow() - timedelta(seconds=grace_s)
    for blob in store.list_blobs():
        if blob.sha256 in referenced:
            continue
        if blob.created_at is not None and blob.created_at > cutoff:
            continue
        store.delete(blob.sha256)
        report.blobs_deleted.append(blob.sha256)
