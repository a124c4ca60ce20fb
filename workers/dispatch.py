"""The Celery side of registry.dispatch.JobDispatcher: sends a committed job's task."""

from __future__ import annotations

from functools import cached_property

from kombu import Queue

from registry.config import Settings
from workers.celery_app import TRAIN_QUEUE, TRAIN_TASK, make_celery

# A queue no worker consumes, holding one message: gone means the broker lost its messages.
# A plain queue works on every kombu transport (Redis, AMQP, SQLAlchemy), unlike INFO run_ids.
MARKER_QUEUE = "vera.broker-marker"


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

    def messages_intact(self) -> bool:
        with self.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            try:
                _, count, _ = conn.default_channel.queue_declare(queue=MARKER_QUEUE, passive=True)
            except conn.channel_errors:  # the queue itself is gone (Redis, AMQP)
                return False
        return count > 0

    def mark_intact(self) -> None:
        with self.app.producer_or_acquire() as producer:
            producer.publish(
                {"marker": "vera-registry: jobs sent before this are in the broker"},
                exchange="",
                routing_key=MARKER_QUEUE,
                declare=[Queue(MARKER_QUEUE, durable=True)],
                delivery_mode=2,
                retry=False,
            )
