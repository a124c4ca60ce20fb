"""The inference server over HTTP: mixed users, publish-to-served, and a PEFT baseline (not a test).

Starts a registry API (SQLite) holding a tiny random Llama and USERS users with published
random adapters, then `vera-registry serve-model` in its own process, and measures:

* throughput: CLIENTS concurrent clients of CLIENTS distinct users vs CLIENTS clients of
  one user, greedy `POST /v1/completions` of MAX_TOKENS tokens (completion tokens/s, p50
  and p95 latency); ratio mixed / one-user (target ≥ 0.85);
* publish-to-served: publish a new version (and roll it back) over the registry's API,
  then poll that user's completion until it changes (target < 1 s), median of SWAPS;
* the same mixed load against bench/peft_baseline_server.py (PEFT, one adapter per user
  loaded, `set_adapter` per request, one request at a time), and ours / baseline.

Rounds interleave the loads (the cores are shared; every load sees the same drift). The
clients (httpx, asyncio) run in this process, on the same cores as the servers.
Results are appended to docs/benchmarks.md; `--json PATH` writes them as JSON too.

    python bench/serve_http.py [--users 64] [--clients 64] [--max-tokens 16] [--duration 10]
        [--rounds 2] [--swaps 5] [--threads 2] [--device cpu] [--no-baseline] [--no-append]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_http_setup import (
    ROOT,
    VOCAB,
    Registry,
    Seeder,
    build_model,
    child_env,
    free_port,
    serve_model_argv,
    stop,
    wait_http,
)
from serve_mixed import cpu_name

PROBE_TOKENS = 4


def prompt_text(index: int, words: int) -> str:
    rng = random.Random(index)
    return " ".join(f"w{rng.randrange(4, VOCAB)}" for _ in range(words))


def completion_body(model: str, user: str, prompt: str, max_tokens: int) -> dict:
    return {"model": model, "prompt": prompt, "user": user, "max_tokens": max_tokens,
            "temperature": 0}  # fmt: skip


async def load(url: str, key: str, model: str, plan: list, duration: float, max_tokens: int):
    """len(plan) clients, client i sending plan[i] = (user, prompt) back to back."""
    latencies: list[float] = []
    tokens = errors = 0
    first_error = ""
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=len(plan), max_keepalive_connections=len(plan))
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=300
    ) as client:

        async def one(user: str, prompt: str) -> None:
            nonlocal tokens, errors, first_error
            body = completion_body(model, user, prompt, max_tokens)
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post("/v1/completions", json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1
                    first_error = first_error or f"{response.status_code} {response.text[:300]}"
                    continue
                tokens += response.json()["usage"]["completion_tokens"]

        started = time.perf_counter()
        await asyncio.gather(*(one(user, prompt) for user, prompt in plan))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "tokens_per_s": tokens / elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "requests": len(latencies),
        "errors": errors,
        "first_error": first_error,
    }


def complete(http: httpx.Client, model: str, user: str, prompt: str, max_tokens: int) -> str:
    response = http.post("/v1/completions", json=completion_body(model, user, prompt, max_tokens))
    if response.status_code != 200:
        raise RuntimeError(f"/v1/completions {response.status_code}: {response.text[:300]}")
    return response.json()["choices"][0]["text"]


def served_within(probe, done, timeout: float, started: float) -> float:
    """Seconds from `started` until done(probe()) holds (inf past `timeout`)."""
    while time.perf_counter() - started < timeout:
        if done(probe()):
            return time.perf_counter() - started
    return float("inf")


def publish_to_served(ctx, samples: int) -> dict:
    """Publish version 2 of one user and roll it back, `samples` times each: seconds from
    the registry call until the server's greedy completion for that user changes."""
    seeder, user = ctx["seeder"], ctx["swap_user"]
    adapter = seeder.adapters[user]
    with httpx.Client(base_url=ctx["url"], headers=ctx["auth"], timeout=60) as http:

        def probe() -> str:
            # A few tokens show the change (the adapters differ from the first token on)
            # and keep each poll short, so polling adds little to what is measured.
            return complete(http, ctx["model"], user, ctx["swap_prompt"], PROBE_TOKENS)

        before = probe()
        publish, rollback = [], []
        for _ in range(samples):
            started = time.perf_counter()
            seeder.rc.publish(adapter, "live", ctx["swap_version"])
            publish.append(served_within(probe, lambda t: t != before, 10, started))
            started = time.perf_counter()
            seeder.rc.rollback(adapter, "live")
            rollback.append(served_within(probe, lambda t: t == before, 10, started))
    return {"publish_s": publish, "rollback_s": rollback}


def outputs_agree(ctx, base_url: str, plan: list) -> int:
    """How many (user, prompt) pairs get the same greedy text from ours and the baseline."""
    same = 0
    with (
        httpx.Client(base_url=ctx["url"], headers=ctx["auth"], timeout=60) as ours,
        httpx.Client(base_url=base_url, timeout=60) as baseline,
    ):
        for user, prompt in plan:
            a = complete(ours, ctx["model"], user, prompt, ctx["max_tokens"])
            b = complete(baseline, ctx["model"], user, prompt, ctx["max_tokens"])
            same += a.strip() == b.strip()  # ours keeps the space that joins it to the prompt
    return same


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--prompt-words", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--swaps", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--r", type=int, default=256)
    parser.add_argument("--scale", type=float, default=1.0, help="std of the random λ")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per server")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--serve-arg", action="append", default=[], help="extra serve-model arg")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def start_servers(args, workdir: Path, processes: list) -> dict:
    """Registry, seeded; serve-model; the PEFT baseline (unless --no-baseline)."""
    model_dir = build_model(workdir / "base", args.hidden, args.layers)
    registry = Registry(workdir).start()
    processes.append(registry.process)
    seeder = Seeder(registry, model_dir, args.r)
    users = [f"user-{i:03d}" for i in range(args.users)]
    seeder.seed(users, args.scale)
    swap_version = seeder.add_version(users[1], seeder.vectors(99, args.scale))
    port = free_port()
    env = child_env(args.threads, registry.api_key)
    argv = serve_model_argv(
        registry, seeder.base["id"], model_dir, port, args.device, args.serve_arg
    )
    processes.append(subprocess.Popen(argv, cwd=workdir, env=env))
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz", processes[-1], 300, "serve-model")
    auth = {"Authorization": f"Bearer {registry.api_key}"}
    models = httpx.get(f"{url}/v1/models", headers=auth).json().get("data") or []
    ctx = {
        "url": url,
        "auth": auth,
        "key": registry.api_key,
        "model": models[0]["id"] if models else seeder.base["id"],
        "seeder": seeder,
        "users": users,
        "swap_user": users[1],
        "swap_prompt": prompt_text(1, args.prompt_words),
        "swap_version": swap_version,
        "max_tokens": args.max_tokens,
        "baseline_url": None,
    }
    if not args.no_baseline:
        adapters = workdir / "peft"
        for user in users:  # the PEFT folders a user exports from the registry today
            seeder.rc.export_peft(seeder.adapters[user], 1, adapters / user)
        port = free_port()
        argv = [sys.executable, str(ROOT / "bench" / "peft_baseline_server.py"), "--model",
                str(model_dir), "--adapters", str(adapters), "--port", str(port),
                "--device", args.device]  # fmt: skip
        processes.append(subprocess.Popen(argv, cwd=workdir, env=env))
        ctx["baseline_url"] = f"http://127.0.0.1:{port}"
        wait_http(f"{ctx['baseline_url']}/healthz", processes[-1], 300, "the PEFT baseline")
    return ctx


def measure(args, ctx) -> dict:
    users = ctx["users"]
    mixed = [
        (users[i % len(users)], prompt_text(i, args.prompt_words)) for i in range(args.clients)
    ]
    single = [(users[0], prompt) for _, prompt in mixed]
    loads = {"ours_mixed": (ctx["url"], mixed), "ours_single": (ctx["url"], single)}
    if ctx["baseline_url"]:
        loads["baseline_mixed"] = (ctx["baseline_url"], mixed)
    for name, (url, plan) in loads.items():  # warm-up: every user's adapter loaded
        warm = asyncio.run(load(url, ctx["key"], ctx["model"], plan, 0.5, args.max_tokens))
        if warm["errors"] == warm["requests"]:
            raise SystemExit(
                f"{name}: {warm['errors']} failed requests, e.g. {warm['first_error']}"
            )
    runs: dict[str, list[dict]] = {name: [] for name in loads}
    for _ in range(args.rounds):
        for name, (url, plan) in loads.items():
            runs[name].append(
                asyncio.run(
                    load(url, ctx["key"], ctx["model"], plan, args.duration, args.max_tokens)
                )
            )
    results: dict = {"runs": runs, "swap": publish_to_served(ctx, args.swaps)}
    if ctx["baseline_url"]:
        results["agree"] = outputs_agree(ctx, ctx["baseline_url"], mixed[: len(users)])
    return results


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def report(args, results: dict) -> tuple[str, str, list[str]]:
    runs, swap = results["runs"], results["swap"]
    names = {"ours_mixed": f"ours, {args.clients} users", "ours_single": "ours, 1 user",
             "baseline_mixed": f"PEFT baseline, {args.clients} users"}  # fmt: skip
    header = ["", *(names[n] for n in runs)]
    rows = [
        ["completion tokens/s", *(f"{median_of(r, 'tokens_per_s'):,.0f}" for r in runs.values())],
        ["requests/s", *(f"{median_of(r, 'requests_per_s'):,.1f}" for r in runs.values())],
        ["p50 latency, ms", *(f"{median_of(r, 'p50_ms'):,.0f}" for r in runs.values())],
        ["p95 latency, ms", *(f"{median_of(r, 'p95_ms'):,.0f}" for r in runs.values())],
        ["errors", *(str(sum(x["errors"] for x in r)) for r in runs.values())],
    ]
    width = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, width, strict=True)) + " |"
        for row in [header, ["-" * w for w in width], *rows]
    ]
    tps = {name: median_of(r, "tokens_per_s") for name, r in runs.items()}
    ratio = tps["ours_mixed"] / tps["ours_single"]
    lines += [
        "",
        f"- mixed / one-user throughput: **{ratio:.2f}** (target ≥ 0.85)",
        "- publish-to-served, median (max) of "
        f"{args.swaps}: **{statistics.median(swap['publish_s']) * 1e3:.0f} ms** "
        f"({max(swap['publish_s']) * 1e3:.0f} ms); rollback-to-served "
        f"{statistics.median(swap['rollback_s']) * 1e3:.0f} ms "
        f"({max(swap['rollback_s']) * 1e3:.0f} ms) (target < 1 s)",
    ]
    if "baseline_mixed" in tps:
        lines.append(
            f"- ours / PEFT baseline throughput ({args.clients} users): "
            f"**{tps['ours_mixed'] / tps['baseline_mixed']:.1f}×**; same greedy text for "
            f"{results['agree']}/{args.users} (user, prompt) pairs"
        )
    machine = (
        f"{cpu_name()}, nproc {os.cpu_count()}, {args.device}, {args.threads} torch threads "
        f"per server (torch {torch.__version__}, python {platform.python_version()})"
    )
    setup = (
        f"tiny random Llama (hidden {args.hidden}, {args.layers} layers, vocab {VOCAB}), VeRA "
        f"r={args.r} on q_proj/v_proj, {args.users} users; {args.clients} concurrent clients, "
        f"greedy, {args.prompt_words}-word prompts, max_tokens {args.max_tokens}; "
        f"{args.duration:.0f} s per load, median of {args.rounds} interleaved rounds; clients "
        f"in the benchmark's process on the same cores; 1-min load average at the end "
        f"{os.getloadavg()[0]:.1f}"
    )
    return machine, setup, lines


def append_to_docs(machine: str, setup: str, lines: list[str]) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    text = docs.read_text()
    title = "## Inference server over HTTP (issue 14)"
    if title not in text:
        text = text.rstrip("\n") + f"\n\n{title}\n\n`python bench/serve_http.py`\n"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    entry = f"\n### {stamp} — {machine}\n\n{setup}\n\n" + "\n".join(lines) + "\n"
    docs.write_text(text.rstrip("\n") + "\n" + entry)


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vera-serve-bench-"))
    processes: list[subprocess.Popen] = []
    try:
        ctx = start_servers(args, workdir, processes)
        results = measure(args, ctx)
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
    machine, setup, lines = report(args, results)
    print(machine)
    print(setup)
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "setup": setup, **results}, indent=2))
    if not args.no_append:
        append_to_docs(machine, setup, lines)


if __name__ == "__main__":
    main()
