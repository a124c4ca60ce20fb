"""A real stack for end-to-end tests: PostgreSQL, our own Redis server, Celery worker
processes, and the API in process."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.cli.local import free_port, worker_environment
from registry.config import Settings
from registry.db import session_scope
from registry.main import create_app
from registry.migrate import upgrade
from tests import factories

REPO = Path(__file__).resolve().parents[2]


class RedisServer:
    """A redis-server of our own, so a test may stop and restart the broker."""

    def __init__(self, port: int, workdir: Path, password: str | None = None) -> None:
        self.port, self.workdir, self.password = port, workdir, password
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)

    def start(self) -> None:
        auth = ["--requirepass", self.password] if self.password else []
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *auth,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker process that sees exactly these settings."""
    env = worker_environment(settings)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", PYTHONPATH=str(REPO))
    return env


class Workers:
    def __init__(self, env: dict, logdir: Path) -> None:
        self.env, self.logdir = env, logdir
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str = "w") -> subprocess.Popen:
        log = open(self.logdir / f"worker-{name}-{len(self.processes)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.tasks",
                "worker",
                "--pool",
                "solo",
                "--queues",
                "train",
                "--hostname",
                f"{name}{len(self.processes)}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen, sig=signal.SIGKILL) -> None:
        process.send_signal(sig)
        process.wait(30)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.logdir.glob("worker-*.log")))


@pytest.fixture
def stack_overrides(request):
    return getattr(request, "param", {})


# The modules whose tests run twice: one job at a time (VERA_PACK_MAX_JOBS=1) and packed
# (the default). Both go through the same claim (lease.claim_next) and runner (PackRunner);
# the pack size only bounds how many queued companions a claim takes, which matters where
# several jobs queue at once: fair share. The other end-to-end tests queue one job at a
# time and run packed only (test_packs and test_pack_runner choose their own sizes).
BOTH_PATHS = {"test_fair_share"}


def pytest_generate_tests(metafunc):
    """Tests of BOTH_PATHS modules run with packs of 1 and of the default size."""
    module = metafunc.module.__name__.rpartition(".")[2]
    if "pack_max_jobs" in metafunc.fixturenames and module in BOTH_PATHS:
        default = Settings.model_fields["pack_max_jobs"].default
        metafunc.parametrize(
            "pack_max_jobs", [1, default], indirect=True, ids=["max1", f"max{default}"]
        )


@pytest.fixture
def pack_max_jobs(request):
    return getattr(request, "param", Settings.model_fields["pack_max_jobs"].default)


@pytest.fixture
def stack(pg_url, pg_session_factory, redis_server, tmp_path, stack_overrides, pack_max_jobs):
    stack_overrides = dict(stack_overrides)
    if stack_overrides.pop("embedded", False):  # no servers: SQLite and a SQLite broker
        stack_overrides.update(
            database_url=f"sqlite:///{tmp_path / 'registry.db'}",
            broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        )
        upgrade(stack_overrides["database_url"])
    values = dict(
        home=tmp_path / "vera-home",  # the workers' model cache, never the repository's
        database_url=pg_url,
        storage_url=f"file://{tmp_path / 'blobs'}",
        broker_url=f"redis://127.0.0.1:{redis_server.port}/0",
        heartbeat_interval_s=0.3,
        heartbeat_stale_s=3.0,
        job_max_attempts=3,
        pack_max_jobs=pack_max_jobs,
    )
    settings = Settings(_env_file=None, **{**values, **stack_overrides})
    env = worker_env(settings)
    env["OMP_NUM_THREADS"] = "1"  # two worker processes share two cores in some tests
    app = create_app(settings)
    with session_scope(app.state.session_factory) as session:
        tenant = factories.tenant(session, "e2e")
        _, key = factories.api_key(session, tenant.id, ["admin"])
    workers = Workers(env, tmp_path)
    with TestClient(app) as client:
        yield Stack(
            app, client, {"Authorization": f"Bearer {key}"}, workers, redis_server, settings
        )
    workers.stop_all()
    app.state.engine.dispose()


class Stack:
    def __init__(self, app, client, auth, workers, redis, settings) -> None:
        self.app, self.client, self.auth = app, client, auth
        self.workers, self.redis, self.settings = workers, redis, settings

    def job(self, job_id: str) -> dict:
        return self.client.get(f"/v1/jobs/{job_id}", headers=self.auth).json()

    def wait_for(self, job_id: str, predicate, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if predicate(job):
                return job
            time.sleep(0.1)
        raise AssertionError(
            f"job {job_id} never got there: {self.job(job_id)}\n{self.workers.logs()}"
        )
