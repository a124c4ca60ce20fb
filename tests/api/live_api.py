"""The API as production runs it: a uvicorn process of its own, over a SQLite file (or the
PostgreSQL database a test passes)."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from registry.cli.local import free_port
from registry.db import make_engine, make_sessionmaker, session_scope
from registry.migrate import upgrade
from tests import factories

REPO = Path(__file__).resolve().parents[2]


class LiveApi:
    """`uvicorn registry.main:create_app` with these VERA_* settings; TMPDIR is `spool`."""

    def __init__(self, workdir: Path, database_url: str | None = None, **settings: str) -> None:
        self.workdir, self.port = workdir, free_port()
        self.database_url = database_url or f"sqlite:///{workdir / 'registry.db'}"
        self.blobs, self.spool = workdir / "blobs", workdir / "spool"
        self.spool.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VERA_")}
        self.env.update(
            PYTHONPATH=str(REPO),
            TMPDIR=str(self.spool),
            VERA_HOME=str(workdir),
            VERA_DATABASE_URL=self.database_url,
            VERA_STORAGE_URL=f"file://{self.blobs}",
            **{f"VERA_{k.upper()}": v for k, v in settings.items()},
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> LiveApi:
        upgrade(self.database_url)
        engine = make_engine(self.database_url)
        with session_scope(make_sessionmaker(engine)) as session:
            tenant = factories.tenant(session)
            self.api_key = factories.api_key(session, tenant.id, ["train"])[1]
        engine.dispose()
        argv = [sys.executable, "-m", "uvicorn", "registry.main:create_app", "--factory"]
        self.process = subprocess.Popen(
            [*argv, "--port", str(self.port), "--log-level", "warning"],
            cwd=self.workdir,
            env=self.env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return self
            except OSError:
                assert self.process.poll() is None, "the API process exited"
                time.sleep(0.1)
        raise RuntimeError("the API did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def upload_head(self, length: int, user_id: str = "alice", task: str = "causal-lm") -> bytes:
        """The request line and headers of a dataset upload of `length` body bytes."""
        return (
            f"POST /v1/datasets?user_id={user_id}&task={task} HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {self.api_key}\r\n"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {length}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()

    def peak_rss_bytes(self) -> int:
        """The process's high-water mark of resident memory (VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a Prometheus counter over the series that carry these labels."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics").read().decode()
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") and all(w in line for w in wanted)
        )

    def stored(self) -> dict[str, list[str]]:
        """What an upload may leave behind: blobs, spooled files, dataset rows."""
        with sqlite3.connect(self.database_url.removeprefix("sqlite:///")) as db:
            rows = [r[0] for r in db.execute("SELECT id FROM datasets")]
        return {
            "blobs": sorted(p.name for p in self.blobs.rglob("*") if p.is_file()),
            "spool": sorted(p.name for p in self.spool.iterdir()),
            "datasets": rows,
        }


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data
