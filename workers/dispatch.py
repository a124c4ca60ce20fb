"""The Celery side of registry.dispatch.JobDispatcher: sends a committed job's task."""

from __future__ import annotations

from functools import cached_property

from registry.config import Settings
from workers.celery_app import TRAIN_QUEUE, TRAIN_TASK, make_celery


class CeleryDispatcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def app(self):
        return make_celery(self.settings)

    def send_job(self, job_id: str, *, queue: str | None = None) -> None:
        """Send once, failing fast: a job left unsent is re-sent by the sweeper."""
        self.app.send_task(
            TRAIN_TASK,
            args=[job_id],
            task_id=job_id,
            queue=queue or TRAIN_QUEUE,
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0.2, "interval_step": 0.5},
        )

    def check(self) -> None:
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
