"""The Celery application, configured from Settings alone.

Celery gives at-least-once delivery here, no more: the database owns each job (see
registry/jobs/lease.py), so a duplicate or redelivered task can never write twice.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from registry.config import Settings, get_settings

TRAIN_QUEUE = "train"
MAINTENANCE_QUEUE = "maintenance"
TRAIN_TASK = "vera.train"
SWEEP_TASK = "vera.sweep"
BLOB_GC_TASK = "vera.blob_gc"
RETENTION_TASK = "vera.retention"
WEBHOOKS_TASK = "vera.webhooks"


def broker_transport_options(settings: Settings) -> dict:
    # Redis redelivers an unacked message after the visibility timeout, even while the first
    # copy still runs: keep it above the longest job, and let the lease fence the rest.
    broker_url = settings.broker_url.get_secret_value()
    if broker_url.startswith("sqla+"):
        # The server-less transport hands its options to create_engine: none of the above.
        return {}
    timeout = settings.broker_visibility_timeout_s or settings.job_max_runtime_s + 600
    options: dict = {"visibility_timeout": timeout}
    if broker_url.startswith("redis"):
        options.update(socket_connect_timeout=5, socket_timeout=30)
        if timeout < 600:
            # kombu scans for overdue messages every 10th tick of 10 s; a short timeout
            # (tests, tiny jobs) needs the scan to keep up with it.
            options.update(
                unacked_restore_interval=max(0.5, timeout / 4), unacked_restore_throttle=1
            )
    return options


def _every(task: str, seconds: float) -> dict:
    return {"task": task, "schedule": seconds, "options": {"expires": seconds}}


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    broker_url = settings.broker_url.get_secret_value()
    if broker_url.startswith("sqla+sqlite:///"):
        settings.home.mkdir(parents=True, exist_ok=True)
    # app.conf is what `celery inspect conf`, Flower and crash reports print: only the
    # broker URL goes in (Celery masks its password); Settings never do.
    app = Celery("vera_registry", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_transport_options(settings),
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_default_queue=TRAIN_QUEUE,
        task_queues=(Queue(TRAIN_QUEUE), Queue(MAINTENANCE_QUEUE)),
        task_routes={
            SWEEP_TASK: {"queue": MAINTENANCE_QUEUE},
            BLOB_GC_TASK: {"queue": MAINTENANCE_QUEUE},
            RETENTION_TASK: {"queue": MAINTENANCE_QUEUE},
            WEBHOOKS_TASK: {"queue": MAINTENANCE_QUEUE},
        },
        task_soft_time_limit=settings.job_max_runtime_s,
        task_time_limit=settings.job_max_runtime_s + 120,
        worker_send_task_events=False,
        # The sweep is cheap (two indexed queries, one broker check): often, so that jobs a
        # restarted broker lost go out again within seconds. GC lists the store: seldom.
        # A tick nobody ran before the next one expires instead of piling up.
        beat_schedule={
            "sweep": _every(SWEEP_TASK, settings.sweep_interval_s),
            "blob-gc": _every(BLOB_GC_TASK, settings.blob_gc_interval_s),
            "retention": _every(RETENTION_TASK, settings.retention_interval_s),
            "webhooks": _every(WEBHOOKS_TASK, settings.webhook_interval_s),
        },
        accept_content=["json"],
        task_serializer="json",
    )
    return app
