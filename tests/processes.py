"""Waiting on a server process the test started."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path


def get_when_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> str:
    """The body of the first 2xx answer from `url`; fails with the log if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} never answered:\n{log.read_text()[-3000:]}")
