"""End to end: a job trained by a real worker ends, and the `vera.webhooks` beat task
delivers job.succeeded to a real HTTPS receiver — from a maintenance worker next to the
training worker (servers), or from the one worker `vera-registry up` runs (embedded)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from registry.webhooks import verify
from tests.webhooks.receiver import serve
from tests.workers.conftest import REPO
from tests.workers.test_end_to_end import submit

pytest.importorskip("torch")
pytestmark = pytest.mark.slow


@pytest.fixture
def receiver(tmp_path):
    receiver, stop = serve(tmp_path, fail_first=1)
    yield receiver
    stop()


@pytest.fixture(params=["servers", "embedded"])
def stack_overrides(request, receiver):
    return {
        "embedded": request.param == "embedded",
        "webhook_allow_private": True,
        "webhook_ca_bundle": receiver.ca_path,
        "webhook_interval_s": 0.5,
        "webhook_retry_base_s": 0.5,
    }


def test_a_finished_job_is_delivered_by_the_beat_task(stack, receiver, tmp_path):
    created = stack.client.post(
        "/v1/webhooks",
        json={"url": receiver.url, "event_types": ["job.succeeded"]},
        headers=stack.auth,
    ).json()
    # As deployed: a training worker and the sweeper (maintenance queue + beat); embedded:
    # one worker on both queues with beat, as `vera-registry up` starts it.
    embedded = stack.settings.database_url.get_secret_value().startswith("sqlite")
    argv = [sys.executable, "-m", "registry.cli", "worker"]
    if not embedded:
        stack.workers.start()  # the train queue
        argv += ["--queues", "maintenance"]
    argv += ["--beat", "--pool", "solo", "--schedule", str(tmp_path / "beat-schedule")]
    log = open(tmp_path / "maintenance.log", "w")  # noqa: SIM115
    maintenance = subprocess.Popen(
        argv, cwd=REPO, env=stack.workers.env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        job = submit(stack, max_steps=2)
        done = stack.wait_for(job["id"], lambda j: j["state"] in ("succeeded", "failed"))
        assert done["state"] == "succeeded", done
        deadline = time.monotonic() + 60
        while not receiver.answered_ok():
            assert time.monotonic() < deadline, (tmp_path / "maintenance.log").read_text()[-3000:]
            time.sleep(0.2)
    finally:
        maintenance.terminate()
        maintenance.wait(30)
    delivered = receiver.answered_ok()[0]
    event = verify(created["secret"], delivered.body, delivered.headers["Vera-Signature"])
    assert event["type"] == "job.succeeded"
    assert event["data"]["job_id"] == job["id"] and event["data"]["version"] == 1
    assert [r.status for r in receiver.requests] == [500, 204]
    [delivery] = stack.client.get(
        f"/v1/webhooks/{created['id']}/deliveries", headers=stack.auth
    ).json()["items"]
    assert (delivery["state"], delivery["attempts"]) == ("succeeded", 2)
