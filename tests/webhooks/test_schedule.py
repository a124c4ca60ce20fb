"""The sender is a beat task on the maintenance queue (the sweeper process runs it)."""

from registry.config import Settings
from workers.celery_app import MAINTENANCE_QUEUE, WEBHOOKS_TASK, make_celery


def test_the_sender_runs_on_the_maintenance_queue_at_its_interval(tmp_path) -> None:
    settings = Settings(_env_file=None, home=tmp_path, webhook_interval_s=0.5)
    conf = make_celery(settings).conf
    by_task = {entry["task"]: entry for entry in conf.beat_schedule.values()}
    assert by_task[WEBHOOKS_TASK]["schedule"] == 0.5
    assert by_task[WEBHOOKS_TASK]["options"] == {"expires": 0.5}  # ticks never pile up
    assert conf.task_routes[WEBHOOKS_TASK] == {"queue": MAINTENANCE_QUEUE}
