"""Load on the two hot read paths: resolve and blob download (not a test).

Starts uvicorn on loopback over a fresh PostgreSQL database seeded with USERS published
adapters, then runs CONCURRENCY async clients for DURATION seconds per endpoint and
prints req/s, p50 and p99. The clients share the machine's cores with the server.

    python bench/api_load.py [--concurrency 32 64] [--duration 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.adapters import service as adapters  # noqa: E402
from registry.cli.local import free_port  # noqa: E402
from registry.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from registry.migrate import upgrade  # noqa: E402
from registry.storage import LocalBlobStore  # noqa: E402
from tests import factories  # noqa: E402
from tests.api.helpers import safetensors_blob  # noqa: E402
from tests.pgdb import temporary_database  # noqa: E402

USERS = 64


def seed(url: str, blobs: Path) -> tuple[str, list[str], list[str]]:
    upgrade(url)
    store = LocalBlobStore(blobs, 1 << 30)
    factory = make_sessionmaker(make_engine(url))
    users, blob_urls = [], []
    with session_scope(factory) as session:
        tenant = factories.tenant(session, "bench")
        _, key = factories.api_key(session, tenant.id, ["read"])
        for index in range(USERS):
            user = f"user-{index}"
            adapter = factories.adapter(session, tenant.id, user_id=user)
            info = store.put(safetensors_blob([float(index)] * 9000))  # ~36 KB, like MiniLM r=256
            adapters.create_version(session, adapter, blob_sha256=info.sha256, size_bytes=info.size)
            adapters.set_alias(session, tenant.id, adapter.id, "live", 1)
            users.append(user)
            blob_urls.append(f"/v1/adapters/{adapter.id}/versions/1/blob")
    return key, users, blob_urls


async def load(base: str, key: str, paths: list[str], concurrency: int, duration: float):
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=30
    ) as client:

        async def one(worker: int) -> None:
            nonlocal errors
            index = worker
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get(paths[index % len(paths)])
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200
                index += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(one(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "requests": len(latencies),
        "errors": errors,
    }


WRK_SCRIPT = """
paths = {%(paths)s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1], {["Authorization"] = "Bearer %(key)s"})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%.3f %%.3f %%d\\n", summary.requests,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def load_wrk(base: str, key: str, paths: list[str], concurrency: int, duration: float) -> dict:
    """wrk (C, from Debian's package) generates the load far more cheaply than Python."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(WRK_SCRIPT % {"paths": ", ".join(f'"{p}"' for p in paths), "key": key})
    output = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(concurrency),
            "-d",
            f"{duration:.0f}s",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = next(line for line in output.splitlines() if line.startswith("RESULT")).split()
    requests, duration_us = int(fields[1]), int(fields[2])
    return {
        "rps": requests / (duration_us / 1e6),
        "p50_ms": float(fields[3]),
        "p99_ms": float(fields[4]),
        "requests": requests,
        "errors": int(fields[5]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with temporary_database("vera_bench") as url:
        run(args, url)


def run(args, url: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="vera-bench-"))
    server = None
    try:
        key, users, blob_urls = seed(url, workdir / "blobs")
        port = free_port()
        env = {
            **os.environ,
            "VERA_DATABASE_URL": url,
            "VERA_STORAGE_URL": f"file://{workdir / 'blobs'}",
            "PYTHONPATH": str(ROOT),
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "registry.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
            cwd=workdir,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        resolve_paths = [f"/v1/resolve?user_id={u}" for u in users]
        generator = "wrk" if shutil.which("wrk") else "httpx"
        print(
            f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"uvicorn workers={args.workers}, PostgreSQL, {USERS} users, "
            f"{args.duration:.0f} s each, load from {generator} on the same machine"
        )
        print("| endpoint | clients | req/s | p50 ms | p99 ms | requests | errors |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for concurrency in args.concurrency:
            for label, paths in (("resolve", resolve_paths), ("blob", blob_urls)):
                if shutil.which("wrk"):
                    load_wrk(base, key, paths, concurrency, 2.0)  # warm-up
                    result = load_wrk(base, key, paths, concurrency, args.duration)
                else:
                    asyncio.run(load(base, key, paths, concurrency, 2.0))  # warm-up
                    result = asyncio.run(load(base, key, paths, concurrency, args.duration))
                print(
                    f"| {label} | {concurrency} | {result['rps']:.0f} | {result['p50_ms']:.1f} "
                    f"| {result['p99_ms']:.1f} | {result['requests']} | {result['errors']} |"
                )
    finally:
        if server is not None:
            server.terminate()
            server.wait(20)


if __name__ == "__main__":
    main()
