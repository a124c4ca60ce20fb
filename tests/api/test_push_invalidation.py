"""Several real API processes on one PostgreSQL database: a move made through one is
served by the others as soon as its PUT has returned (LISTEN/NOTIFY), and a client reads
its own writes back even through a process that polls with a long cache."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from registry.cli.local import free_port
from registry.client.api import ClientError, RegistryClient
from registry.config import reveal
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


class CuttableProxy:
    """A TCP forwarder to PostgreSQL, standing in for the network: `cut()` drops every
    connection and refuses new ones until `restore()`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._open = threading.Event()
        self.restore()

    def restore(self) -> None:
        server = socket.create_server(("127.0.0.1", self.port))
        server.settimeout(0.05)
        self._open.set()
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        self._open.clear()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._sockets.clear()

    def _accept(self, server: socket.socket) -> None:
        with server:
            while self._open.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(self.target)
                self._sockets += [client, upstream]
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.close()


def _until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def proxy(pg_url):
    url = make_url(pg_url)
    return CuttableProxy((url.host, url.port or 5432))


@pytest.fixture
def settings(settings, proxy):
    # The listener goes through the proxy; a 60 s cache: polling alone would serve stale.
    listen = make_url(reveal(settings.database_url)).set(host="127.0.0.1", port=proxy.port)
    return settings.model_copy(
        update={
            "resolve_cache_s": 60,
            "listen_database_url": SecretStr(listen.render_as_string(hide_password=False)),
        }
    )


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_listener_that_lost_its_connection_starts_over_when_back(client, app, tenant, proxy):
    from registry.adapters import service as adapters
    from tests.api import helpers

    cache = app.state.manifests
    blobs = [helpers.safetensors_blob([float(i)]) for i in range(3)]
    adapter_id = helpers.adapter_with_versions(app, tenant.id, blobs)

    def move(version: int) -> None:  # as another process would: straight in the database
        with session_scope(app.state.session_factory) as session:
            adapters.set_alias(session, tenant.id, adapter_id, "live", version)

    def resolved() -> int:
        answer = client.get("/v1/resolve", params={"user_id": "alice"}, headers=tenant.auth())
        return answer.json()["version"]

    _until(cache.push_live)
    move(1)
    assert resolved() == 1  # cached
    proxy.cut()
    _until(lambda: not cache.push_live())
    move(2)  # its notification is lost to this process
    assert resolved() == 1  # meanwhile: polling, every 60 s here
    proxy.restore()
    _until(cache.push_live)
    assert resolved() == 2  # the reconnect dropped everything it might have missed
    move(3)
    _until(lambda: resolved() == 3, timeout=1.0)  # and pushes arrive again
