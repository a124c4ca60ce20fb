"""No credential in any dump: Settings, Celery's conf (`celery inspect conf`, Flower), the
logs of a worker and an API starting, /readyz and /metrics."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from registry.cli.local import free_port
from registry.config import Settings
from registry.main import create_app
from tests.processes import get_when_up
from tests.workers.conftest import REPO, RedisServer, Workers, worker_env
from workers.celery_app import make_celery

PG_PASSWORD = "pg-Secret-4711"
REDIS_PASSWORD = "redis-Secret-0815"
S3_KEY_ID = "AKIA-Secret-2718"
S3_SECRET = "s3-Secret-3141"
SECRETS = (PG_PASSWORD, REDIS_PASSWORD, S3_KEY_ID, S3_SECRET)


def assert_no_secret(text: str, where: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{where} shows {leaked}:\n{text[-3000:]}"


@pytest.fixture
def secret_redis(tmp_path):
    server = RedisServer(free_port(), tmp_path, password=REDIS_PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(pg_url, secret_redis, tmp_path) -> Settings:
    # PostgreSQL here trusts local connections, so the password is carried but never checked.
    database_url = make_url(pg_url).set(password=PG_PASSWORD).render_as_string(False)
    return Settings(
        _env_file=None,
        home=tmp_path / "home",
        database_url=database_url,
        broker_url=secret_redis.url,
        storage_url=f"file://{tmp_path / 'blobs'}",
        s3_access_key_id=S3_KEY_ID,
        s3_secret_access_key=S3_SECRET,
    )


def test_settings_never_print_credentials(settings):
    for dump in (repr(settings), str(settings), settings.model_dump_json()):
        assert_no_secret(dump, "Settings")
    assert_no_secret(repr(settings.model_dump()), "Settings.model_dump()")
    assert PG_PASSWORD in settings.database_url.get_secret_value()  # still usable


def test_celery_conf_shows_no_credentials(settings):
    conf = make_celery(settings).conf
    assert_no_secret(conf.humanize(with_defaults=True), "conf.humanize()")
    assert_no_secret(repr(conf.table(with_defaults=True)), "conf.table()")


def test_worker_start_and_inspect_conf_show_no_credentials(settings, tmp_path):
    workers = Workers(worker_env(settings), tmp_path)
    workers.start()
    try:
        deadline = time.monotonic() + 90
        while "ready." not in workers.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "ready." in workers.logs(), workers.logs()
        replies = make_celery(settings).control.inspect(timeout=5).conf(with_defaults=True)
        assert replies, "the worker did not answer `inspect conf`"
        assert_no_secret(repr(replies), "celery inspect conf")
    finally:
        workers.stop_all()
    assert_no_secret(workers.logs(), "the worker's log")


def test_api_start_log_and_probes_show_no_credentials(settings, tmp_path):
    port = free_port()
    log = tmp_path / "api.log"
    env = {**worker_env(settings), "PYTHONPATH": str(REPO)}
    with open(log, "w") as out:
        api = subprocess.Popen(
            [sys.executable, "-m", "registry.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = get_when_up(f"http://127.0.0.1:{port}/readyz", api, log)
        assert '"ready"' in ready
        assert_no_secret(ready, "/readyz")
        assert_no_secret(get_when_up(f"http://127.0.0.1:{port}/metrics", api, log), "/metrics")
    finally:
        api.terminate()
        api.wait(30)
    assert_no_secret(log.read_text(), "the API's log")


def test_readyz_names_no_address_and_logs_the_reason(settings, secret_redis, caplog):
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            assert client.get("/readyz").status_code == 200
            secret_redis.stop()
            with caplog.at_level(logging.WARNING, logger="registry.api.health"):
                answer = client.get("/readyz")
    finally:
        app.state.engine.dispose()
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"database": "ok", "storage": "ok", "broker": "failed"}
    assert str(secret_redis.port) not in answer.text and "127.0.0.1" not in answer.text
    assert "broker check failed" in caplog.text  # the reason is in the operator's log
    assert_no_secret(caplog.text, "the readiness log")
