"""`vera-registry up` as a user runs it: a real process tree, real Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from registry.cli import main
from registry.config import get_settings
from tests.workers.conftest import REPO, free_port
from tests.workers.test_end_to_end import dataset_lines, minilm

pytestmark = pytest.mark.slow


class Up:
    """One `vera-registry up` in a fresh folder, with no VERA_* configuration at all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VERA_")}
        self.env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
        self.lines: list[str] = []
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        self.lines = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "registry.cli", "up", "--port", str(self.port)],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal gives it
        )
        threading.Thread(target=self._read, daemon=True).start()
        banner = self.wait_for("Ctrl-C stops everything", 60)
        self.api_key = re.search(r"admin key: (\S+)", banner).group(1)
        self.worker_pid = int(re.search(r"worker:\s+pid (\d+)", banner).group(1))
        return banner

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.process.poll() is None or text in self.output(), self.output()
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()}"
            time.sleep(0.05)
        return self.output()

    def ctrl_c(self) -> int:
        """What a terminal does on Ctrl-C: SIGINT to the whole foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(60)

    def cli(self, *args: str, ok: bool = True):
        """The CLI with no URL or key given: it must find them where `up` left them."""
        get_settings.cache_clear()
        env = {"VERA_HOME": str(self.workdir / ".vera"), "VERA_URL": None, "VERA_API_KEY": None}
        result = CliRunner().invoke(main, list(args), env=env)
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    def job(self, job_id: str) -> dict:
        return json.loads(self.cli("jobs", "show", job_id, "--json").output)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def processes_in(workdir: Path) -> list[int]:
    """Every live process working in this folder: `up`, its worker, the worker's beat."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cwd").resolve() == workdir.resolve():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def up(tmp_path):
    stack = Up(tmp_path)
    yield stack
    stack.stop()
    for pid in processes_in(tmp_path):
        os.kill(pid, signal.SIGKILL)


def wait_until(predicate, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_up_trains_with_the_cli_and_ctrl_c_stops_everything(up, tmp_path):
    banner = up.start()
    assert f"http://127.0.0.1:{up.port}" in banner
    console = re.search(r"console:\s+(\S+)", banner).group(1)
    assert console == f"http://127.0.0.1:{up.port}/ui/"
    with urllib.request.urlopen(console, timeout=10) as page:
        assert b'<script type="module" src="/ui/app.js">' in page.read()
    home = (tmp_path / ".vera").resolve()
    assert (home / "registry.db").is_file()  # SQLite, under ./.vera, no configuration
    assert oct((home / "credentials.json").stat().st_mode)[-3:] == "600"

    path, _ = minilm()
    registered = json.loads(
        up.cli("base-models", "register", str(path), "--r", "32", "--json").output
    )
    assert registered["target_modules"] == ["query", "value"]
    data = tmp_path / "data.jsonl"
    data.write_bytes(dataset_lines())
    result = up.cli(
        "jobs",
        "submit",
        "--user",
        "alice",
        "--dataset",
        str(data),
        "--steps",
        "6",
        "--batch-size",
        "4",
        "--watch",
    )
    assert "succeeded: adapter" in result.output and "v1 (live)" in result.output
    assert "6/6" in result.output and "loss 0." in result.output  # the bar's last frame
    peft = tmp_path / "peft"
    up.cli("adapters", "download", "--user", "alice", "--peft", str(peft))
    assert (peft / "adapter_model.safetensors").stat().st_size > 0

    # A long job is running when Ctrl-C comes: it goes back to the queue, not lost.
    long = json.loads(
        up.cli(
            "jobs",
            "submit",
            "--user",
            "bob",
            "--dataset",
            str(data),
            "--steps",
            "100000",
            "--batch-size",
            "4",
            "--json",
        ).output
    )
    wait_until(lambda: up.job(long["id"])["step"] > 0, what="the long job never started")
    assert {up.process.pid, up.worker_pid} <= set(processes_in(tmp_path))
    assert up.ctrl_c() == 0
    assert "stopped" in up.output() and "Traceback" not in up.output()
    assert processes_in(tmp_path) == []  # the worker and its beat are gone
    row = (
        sqlite3.connect(home / "registry.db")
        .execute("SELECT state, attempts, sent_at FROM jobs WHERE id = ?", (long["id"],))
        .fetchone()
    )
    # Handed back: not failed, no attempt burned. Unsent (the next `up` sends it), or
    # already sent by the stopping worker's own sweeper into the embedded broker.
    assert row[:2] == ("queued", 0)

    # The next `up` sends it again at once, and the same key still works.
    banner = up.start()
    assert "resumed:   1 unfinished job" in banner
    wait_until(lambda: up.job(long["id"])["state"] == "running", what="not resumed")
    assert up.job(long["id"])["attempts"] == 1
    assert json.loads(up.cli("jobs", "cancel", long["id"], "--json").output)["id"] == long["id"]
    wait_until(lambda: up.job(long["id"])["state"] == "cancelled", what="not cancelled")
    up.process.send_signal(signal.SIGTERM)  # as a service manager stops it
    assert up.process.wait(60) == 0
    assert processes_in(tmp_path) == []


def test_up_refuses_a_taken_port_and_says_so(up, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", up.port))
        sock.listen()
        result = subprocess.run(
            [sys.executable, "-m", "registry.cli", "up", "--port", str(up.port)],
            cwd=tmp_path,
            env=up.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {up.port}" in result.stderr and "--port" in result.stderr
