"""How the API hands a committed job to the workers: one small interface.

The workers part provides the Celery implementation; until it is configured a job
simply stays `queued` (the sweeper re-sends queued jobs that were never sent).
"""

from __future__ import annotations

from typing import Protocol


class JobDispatcher(Protocol):
    def send_job(self, job_id: str, *, queue: str | None = None) -> None:
        """Send the training task for a committed job. May raise; the job stays queued."""

    def check(self) -> None:
        """Raise if the broker cannot be reached (readiness probe)."""


class NullDispatcher:
    """Sends nothing: jobs wait in `queued` until a worker-side dispatcher is configured."""

    def send_job(self, job_id: str, *, queue: str | None = None) -> None:
        return None

    def check(self) -> None:
        return None
