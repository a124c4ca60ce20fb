"""How many threads one test process may use: this machine's cores, shared among the
pytest-xdist workers (`-n`), so parallel workers never oversubscribe the CPU."""

from __future__ import annotations

import os


def threads_per_worker() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (cores or 1) // workers)
