"""How a job ends when it does not succeed: cancelled, a user error, a system error retried
or final, or given back at shutdown. One job at a time: a pack's other jobs never see it."""

from __future__ import annotations

import logging
import traceback

from registry.db import session_scope
from registry.jobs import lease
from registry.jobs.errors import UserInputError
from registry.jobs.models import Job

log = logging.getLogger(__name__)
SUMMARY_CHARS = 300
TRACEBACK_CHARS = 4096


class RetryLater(Exception):
    """An infrastructure failure; the job went back to the queue for another attempt."""


class Cancelled(Exception):
    """The job's cancellation was asked for; it stopped at a step boundary."""


def record_failure(ctx, claim: lease.Claim, exc: BaseException, *, resend: bool) -> str:
    """Record why the job stopped; returns the outcome. A system error another attempt may
    not hit puts the job back in the queue ('retry'): `resend` when no Celery task of its
    own will retry it (it trained in another job's pack), so the sweeper sends it again."""
    from registry.vera.projection import ProjectionMismatch
    from workers.model_cache import BaseModelMismatch

    try:
        with session_scope(ctx.session_factory) as session:
            if isinstance(exc, Cancelled):
                lease.finish_cancelled(session, claim)
                return "cancelled"
            if isinstance(exc, UserInputError):
                lease.finish_failure(session, claim, code=exc.code, kind="user", message=str(exc))
                return "failed:user"
            lease.record_event(session, claim, "log", system_error_event(exc, claim.attempt))
            if isinstance(exc, ProjectionMismatch | BaseModelMismatch):
                lease.finish_failure(
                    session, claim, code=type(exc).__name__, kind="system", message=str(exc)
                )
                return "failed:system"
            log.error("job %s attempt %s failed", claim.job_id, claim.attempt, exc_info=exc)
            job = session.get(Job, claim.job_id)
            if claim.attempt >= job.max_attempts:
                lease.finish_failure(
                    session, claim, code="infrastructure", kind="system", message=summary(exc)
                )
                return "failed:system"
            lease.release(session, claim, summary(exc), resend=resend)
            return "retry"
    except lease.LeaseLost:
        return "lease_lost"


def summary(exc: BaseException) -> str:
    """What a user sees of a system error: its type and first line, never a traceback."""
    first_line = next(iter(str(exc).splitlines()), "")
    return f"{type(exc).__name__}: {first_line}"[:SUMMARY_CHARS]


def system_error_event(exc: BaseException, attempt: int) -> dict:
    """For whoever debugs the job: the end of the traceback, where the cause is."""
    trace = "".join(traceback.format_exception(exc))
    return {
        "message": f"attempt {attempt} failed with a system error: {summary(exc)}",
        "traceback": trace[-TRACEBACK_CHARS:],
    }
