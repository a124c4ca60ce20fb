"""`vera-registry up`: the whole registry on one machine, with no configuration.

`LocalStack` migrates the database, keeps an admin key for the CLI, starts a training
worker as a child process (Celery's solo pool, with the periodic sweeper) and serves the
API: in the foreground for `up`, in a thread for `demo`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
from pydantic import SecretStr

from registry.cli.app import main
from registry.cli.remote import credentials_path, saved_credentials
from registry.config import Settings, get_settings

WORKER_STOP_S = 20.0  # a running job hands itself back at its next step well before this


def _die_with_parent() -> None:
    """In the worker child: SIGTERM when the parent dies (Linux), so a killed `up` leaves
    no orphan worker behind."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def worker_environment(settings: Settings, overrides: dict[str, str] | None = None) -> dict:
    """The environment of a child that must see exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERA_")}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()  # str() would hand the child '**********'
        if isinstance(value, list):
            value = ",".join(value)  # list settings are comma-separated in the environment
        if value is not None:
            env[f"VERA_{name.upper()}"] = str(value)
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    env.update(overrides or {})
    return env


class LocalStack:
    def __init__(self, settings: Settings, host: str, port: int, *, worker: bool = True) -> None:
        self.settings, self.host, self.port, self.with_worker = settings, host, port, worker
        self.url = f"http://{host}:{port}"
        self.api_key = ""
        self.worker: subprocess.Popen | None = None
        self.server = None
        self._thread: threading.Thread | None = None

    @property
    def worker_log(self) -> Path:
        return self.settings.home / "worker.log"

    def prepare(self) -> None:
        """Schema at head, an admin key (kept for the CLI), lost jobs sent again."""
        from registry.db import make_engine, make_sessionmaker
        from registry.migrate import upgrade

        if not port_is_free(self.host, self.port):
            raise click.ClickException(
                f"port {self.port} on {self.host} is taken (another `up`?): pass --port"
            )
        self.settings.home.mkdir(parents=True, exist_ok=True)
        upgrade(self.settings.database_url)
        engine = make_engine(self.settings.database_url)
        try:
            factory = make_sessionmaker(engine)
            self.api_key = self._admin_key(factory)
            self.resumed = self._send_unfinished(factory)
        finally:
            engine.dispose()
        path = credentials_path(self.settings)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(json.dumps({"url": self.url, "api_key": self.api_key}) + "\n")

    def _admin_key(self, factory) -> str:
        from registry.db import session_scope
        from registry.errors import RegistryError
        from registry.tenants import service

        with session_scope(factory) as session:
            saved = saved_credentials(self.settings).get("api_key")
            if saved:
                try:
                    if "admin" in service.authenticate(session, saved).scopes:
                        return saved
                except RegistryError:
                    pass  # revoked, or another database: make a new one
            try:
                tenant = service.get_tenant_by_name(session, "local")
            except RegistryError:
                tenant = service.create_tenant(session, "local")
            _, key = service.create_api_key(session, tenant.id, ["admin"], "vera-registry up")
            return key

    def _send_unfinished(self, factory) -> list[str]:
        """Jobs the last run left queued (handed back at Ctrl-C) go to the broker now, not
        at the sweeper's first round; the ids of every job waiting to run. (One that the
        stopping worker's own sweeper already sent waits in the embedded broker.)"""
        from sqlalchemy import select

        from registry.db import session_scope
        from registry.jobs.models import Job
        from workers.dispatch import CeleryDispatcher
        from workers.sweeper import sweep

        sweep(factory, CeleryDispatcher(self.settings), self.settings)
        with session_scope(factory) as session:
            return list(session.scalars(select(Job.id).where(Job.state == "queued")))

    def start_worker(self, **env_overrides: str) -> None:
        overrides = {}
        if "heartbeat_interval_s" not in self.settings.model_fields_set:
            overrides["VERA_HEARTBEAT_INTERVAL_S"] = "1.0"  # a lively progress bar
        env = worker_environment(self.settings, {**overrides, **env_overrides})
        schedule = self.settings.home / "celerybeat-schedule"
        argv = [sys.executable, "-m", "registry.cli", "worker", "--beat", "--pool", "solo"]
        argv += ["--schedule", str(schedule)]
        with open(self.worker_log, "ab") as log:
            # A session of its own: the terminal's Ctrl-C reaches `up`, which stops the
            # worker in order (its running job goes back to the queue) instead of both
            # racing to exit.
            self.worker = subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def stop_worker(self) -> None:
        worker, self.worker = self.worker, None
        if worker is None or worker.poll() is not None:
            return
        worker.terminate()  # Celery's warm shutdown
        try:
            worker.wait(WORKER_STOP_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.pid, signal.SIGKILL)  # the embedded beat, if it lingers

    def _server(self):
        import uvicorn

        from registry.main import create_app

        config = uvicorn.Config(
            create_app(self.settings),
            host=self.host,
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=3,
        )
        self.server = uvicorn.Server(config)
        return self.server

    def serve_forever(self, on_ready) -> None:
        """The API in this thread until Ctrl-C/SIGTERM; `on_ready()` once it listens."""
        server = self._server()

        def announce() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                on_ready()

        threading.Thread(target=announce, daemon=True).start()
        # uvicorn re-raises the Ctrl-C (or SIGTERM) it handled, once it has shut down.
        with contextlib.suppress(KeyboardInterrupt):
            server.run()

    def start_in_thread(self, timeout: float = 30.0) -> None:
        server = self._server()
        self._thread = threading.Thread(target=server.run, name="registry-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise click.ClickException(f"the API did not start on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.stop_worker()


def _terminate_as_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@main.command()
@click.option("--host", default=None, help="Bind address [default: VERA_API_HOST].")
@click.option("--port", default=None, type=int, help="Port [default: VERA_API_PORT].")
@click.option("--no-worker", is_flag=True, help="The API alone (workers run elsewhere).")
def up(host: str | None, port: int | None, no_worker: bool) -> None:
    """Run the registry on this machine: database, blobs, broker, a worker and the API.

    With no configuration: SQLite, blobs and a server-less broker under VERA_HOME (./.vera). The URL
    and an admin key are printed, and saved where the other commands find them. Ctrl-C
    stops everything; a job in training goes back to the queue and resumes on the next
    `up`."""
    settings = get_settings()
    stack = LocalStack(settings, host or settings.api_host, port or settings.api_port)
    stack.prepare()
    if not no_worker:
        stack.start_worker()
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)

    def ready() -> None:
        lines = [
            "VeRA Registry is up",
            f"  API:       {stack.url}  (interactive docs: {stack.url}/docs)",
            f"  console:   {stack.url}/ui/  (sign in with the admin key below)",
            f"  admin key: {stack.api_key}",
            f"  state:     {settings.home.resolve()}  (URL and key saved for the CLI)",
        ]
        if stack.worker is not None:
            lines.append(f"  worker:    pid {stack.worker.pid}, log {stack.worker_log}")
        if stack.resumed:
            lines.append(f"  resumed:   {len(stack.resumed)} unfinished job(s) from the last run")
        lines.append(
            f"Try `vera-registry demo --url {stack.url}` or `vera-registry jobs list` in "
            "another terminal. Ctrl-C stops everything."
        )
        click.echo("\n".join(lines))

    try:
        stack.serve_forever(ready)
    finally:
        click.echo("stopping: API down; worker finishing its step …")
        stack.stop()
        signal.signal(signal.SIGTERM, previous)
        click.echo("stopped")
