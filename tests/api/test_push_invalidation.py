"""Several real API processes on one PostgreSQL database: a move made through one is
served by the others as soon as its PUT has returned (LISTEN/NOTIFY), and a client reads
its own writes back even through a process that polls with a long cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from registry.cli.local import free_port
from registry.client.api import ClientError, RegistryClient
from registry.db import session_scope
from tests import factories

ROOT = Path(__file__).resolve().parents[2]


class ApiProcess:
    """`uvicorn registry.main:create_app` in its own process, with its own settings."""

    def __init__(self, db_url: str, home: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "VERA_HOME": str(home),
            "VERA_DATABASE_URL": db_url,
            "VERA_STORAGE_URL": f"file://{home / 'blobs'}",
            **{f"VERA_{k.upper()}": v for k, v in settings.items()},
        }
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "registry.main:create_app", "--factory"),
                *("--port", str(self.port), "--log-level", "warning", "--no-access-log"),
            ],
            env=env,
            cwd=home,
        )

    def wait_ready(self, deadline: float) -> None:
        while True:
            assert self.process.poll() is None, "the API process exited"
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API process did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def world(pg_url, pg_session_factory):
    """A tenant with a read/train key and alice's adapter with two versions."""
    with session_scope(pg_session_factory) as session:
        tenant = factories.tenant(session, "acme")
        _, key = factories.api_key(session, tenant.id, ["train"])
        adapter = factories.adapter(session, tenant.id, user_id="alice")
        factories.version(session, adapter)
        factories.version(session, adapter)
        return {"key": key, "adapter_id": adapter.id}


@pytest.fixture
def start_apis(pg_url, pg_session_factory, tmp_path):
    """Starts named API processes with their own settings; stops them after the test."""
    started: list[ApiProcess] = []

    def start(**configs: dict[str, str]) -> dict[str, ApiProcess]:
        processes = {}
        for name, settings in configs.items():
            home = tmp_path / name
            home.mkdir()
            processes[name] = ApiProcess(pg_url, home, **settings)
            started.append(processes[name])
        deadline = time.monotonic() + 60
        for process in processes.values():
            process.wait_ready(deadline)
        return processes

    yield start
    for process in started:
        process.stop()


def test_a_move_through_one_process_is_served_by_another_once_the_put_returns(world, start_apis):
    processes = start_apis(a={}, b={})
    auth = {"Authorization": f"Bearer {world['key']}"}
    alias_url = f"/v1/adapters/{world['adapter_id']}/aliases/live"
    resolve = ("/v1/resolve", {"user_id": "alice"})
    a = httpx.Client(base_url=processes["a"].url, headers=auth)
    b = httpx.Client(base_url=processes["b"].url, headers=auth)
    with a, b:
        assert a.put(alias_url, json={"version": 1}).status_code == 200
        reads = stale = moves = 0
        current = 1
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and moves < 40:
            assert b.get(resolve[0], params=resolve[1]).json()["version"] == current  # cached
            current = 3 - current
            moved = a.put(alias_url, json={"version": current})
            assert moved.status_code == 200, moved.text
            moves += 1
            for _ in range(5):
                reads += 1
                stale += b.get(resolve[0], params=resolve[1]).json()["version"] != current
    assert moves >= 10, moves
    assert stale == 0, f"{stale} of {reads} reads on B were stale after the PUT on A returned"


def test_the_client_reads_its_own_writes_through_a_polling_process(world, start_apis):
    # C polls, with a 30 s cache: only min_generation gets a fresh answer out of it.
    processes = start_apis(a={}, c={"pg_listen": "false", "resolve_cache_s": "30"})

    class Replicas(httpx.HTTPTransport):
        """A load balancer: writes go to A, reads to C."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            target = processes["a" if request.method != "GET" else "c"]
            request.url = request.url.copy_with(port=target.port)
            return super().handle_request(request)

    def client(**kwargs) -> RegistryClient:
        return RegistryClient(
            "http://127.0.0.1", world["key"], transport=Replicas(), retries=1, **kwargs
        )

    adapter_id = world["adapter_id"]
    with client() as writer, client() as bystander:
        writer.publish(adapter_id, "live", 1)
        assert writer.resolve("alice").version == 1  # C caches generation 1 for 30 s
        published = writer.publish(adapter_id, "live", 2)
        assert published["manifest"]["version"] == 2
        assert bystander.resolve("alice").version == 1  # C's stale cache, as configured
        assert writer.resolve("alice").version == 2  # the writer's own write, through C
        assert bystander.resolve("alice", min_generation=published["generation"]).version == 2
    slept: list[float] = []
    with client(sleep=slept.append) as hasty, pytest.raises(ClientError) as raised:
        hasty.resolve("alice", min_generation=99)
    assert raised.value.status == 409 and raised.value.code == "generation_not_visible"
    assert len(slept) == 1  # retried once (a lagging replica), then told
