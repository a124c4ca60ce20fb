"""How the API hands a committed job to the workers: one small interface.

The workers part provides the Celery implementation; until it is configured a job
simply stays `queued` (the sweeper re-sends queued jobs that were never sent).

A sent job is sent again only when its message is known lost: the dispatcher leaves a
marker in the broker (`mark_intact`), and a broker that no longer holds it
(`messages_intact` is false: restarted without persistence, flushed, replaced) has lost
every message sent before. Nothing is re-sent on a timer, so a backlog no worker takes
stays the size it is.
"""

from __future__ import annotations

from typing import Protocol


class JobDispatcher(Protocol):
    def send_job(self, job_id: str, *, queue: str | None = None) -> None:
        """Send the training task for a committed job. May raise; the job stays queued."""

    def check(self) -> None:
        """Raise if the broker cannot be reached (readiness probe)."""

    def messages_intact(self) -> bool:
        """False when the broker lost what it held since the last `mark_intact()` (or was
        never marked). May raise if the broker cannot be reached."""

    def mark_intact(self) -> None:
        """Leave the marker `messages_intact` looks for, once lost jobs are set to re-send."""


class NullDispatcher:
    """Sends nothing: jobs wait in `queued` until a worker-side dispatcher is configured."""

    def send_job(self, job_id: str, *, queue: str | None = None) -> None:
        return None

    def check(self) -> None:
        return None

    def messages_intact(self) -> bool:
        return True

    def mark_intact(self) -> None:
        return None
