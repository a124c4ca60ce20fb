"""Train one user's VeRA adapter: a plain loop, no Celery, no database.

The caller (a worker) owns persistence: it passes a `progress` callback (heartbeat, loss
per step) and a `should_cancel` callable read before every step. The base model is
returned unchanged: VeRA is removed and any trained head restored when `train` returns.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from registry.jobs.errors import UserInputError

from .config import TASK_SEQUENCE_CLASSIFICATION, VeraConfig
from .data import Encoded, collate, encode, pad_token_id
from .inject import (
    adapter_state_dict,
    head_modules,
    inject_vera,
    load_adapter_state_dict,
    remove_vera,
    vera_layers,
)


class TrainingCancelled(Exception):
    """`should_cancel()` returned True; nothing was produced."""

    def __init__(self, step: int):
        super().__init__(f"training cancelled before step {step}")
        self.step = step


@dataclass
class TrainingArgs:
    # VeRA's vectors want a far larger rate than LoRA (paper Tab. 8: 1e-2 .. 4e-2 for RoBERTa).
    learning_rate: float = 2e-2
    head_learning_rate: float = 2e-3
    weight_decay: float = 0.0
    epochs: int = 1
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 16
    warmup_ratio: float = 0.06
    schedule: str = "linear"  # "linear" | "cosine" | "constant" (after warmup)
    max_grad_norm: float | None = 1.0
    seed: int = 0
    max_length: int = 128
    eval_fraction: float = 0.0  # held out from the examples when no eval set is given
    eval_batch_size: int = 64


@dataclass
class Progress:
    step: int
    total_steps: int
    loss: float
    tokens_per_second: float


@dataclass
class TrainingResult:
    vectors: dict[str, torch.Tensor]  # PEFT names, heads included: ready for save_peft/blob
    head: dict[str, torch.Tensor]  # the head tensors alone (also inside `vectors`)
    metrics: dict[str, Any] = field(default_factory=dict)


def _lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    raise ValueError(f"schedule must be linear, cosine or constant, got {schedule!r}")


def _chunks(items: list[Encoded], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BatchOrder:
    """The training batch order: a `random.Random(seed)` shuffle at the start of every
    epoch, then consecutive batches of `size` (the last one of an epoch may be short).

    `start_step` replays the shuffles of the steps already taken, so a resumed run
    continues with exactly the batches an uninterrupted one would see next.
    """

    def __init__(self, count: int, size: int, seed: int, start_step: int = 0):
        self.count, self.size = count, size
        self.per_epoch = math.ceil(count / size)
        self._rng = random.Random(seed)
        self._order: list[int] = []
        for _ in range(start_step // self.per_epoch):
            self._shuffle()  # epochs already done: only their draws matter
        self._position = self.per_epoch  # the next batch starts a new epoch
        if start_step % self.per_epoch:
            self._shuffle()
            self._position = start_step % self.per_epoch

    def _shuffle(self) -> None:
        self._order = list(range(self.count))
        self._rng.shuffle(self._order)
        self._position = 0

    def peek(self) -> list[int]:
        """The indices of the next batch, without consuming it."""
        if self._position >= self.per_epoch:
            self._shuffle()
        start = self._position * self.size
        return self._order[start : start + self.size]

    def next(self) -> list[int]:
        batch = self.peek()
        self._position += 1
        return batch


def total_steps(count: int, args: TrainingArgs) -> int:
    return args.max_steps or math.ceil(count / args.batch_size) * args.epochs


def head_init_std(model: nn.Module) -> float:
    return getattr(getattr(model, "config", None), "initializer_range", 0.02)


def seed_heads(heads: Sequence[nn.Module], std: float, seed: int) -> None:
    """Seeded head init (transformers' normal(0, initializer_range)), for reproducible runs.

    One generator per run, drawn in head order; only heads that are a single nn.Linear
    are re-drawn (others keep their loaded weights).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for head in heads:
            if isinstance(head, nn.Linear):
                head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * std)
                if head.bias is not None:
                    head.bias.zero_()


def _reset_heads(model: nn.Module, config: VeraConfig, seed: int) -> None:
    seed_heads(list(head_modules(model, config).values()), head_init_std(model), seed)


def build_optimizer(
    vectors: list[torch.Tensor], heads: list[torch.Tensor], args: TrainingArgs
) -> torch.optim.AdamW:
    """AdamW with two groups: the λ vectors at `learning_rate`, heads at `head_learning_rate`."""
    groups = [{"params": vectors, "lr": args.learning_rate}]
    if heads:
        groups.append({"params": heads, "lr": args.head_learning_rate})
    return torch.optim.AdamW(groups, weight_decay=args.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, total: int, args: TrainingArgs
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = int(total * args.warmup_ratio)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(step, total, warmup, args.schedule)
    )


def _optimizer(model: nn.Module, config: VeraConfig, args: TrainingArgs) -> torch.optim.AdamW:
    vectors = [
        p for layer in vera_layers(model).values() for p in layer.parameters() if p.requires_grad
    ]
    heads = [p for head in head_modules(model, config).values() for p in head.parameters()]
    return build_optimizer(vectors, heads, args)


@torch.no_grad()
def _device_batch(batch: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}


def _autocast(model: nn.Module):
    """bf16 autocast on a GPU that has it; the λ vectors stay fp32 (their optimizer state
    too), only the matmuls drop precision. On the CPU: full fp32, deterministic."""
    device = next(model.parameters()).device
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate(
    model: nn.Module,
    items: list[Encoded],
    task: str,
    pad_id: int,
    batch_size: int = 64,
    forward: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, float]:
    """Mean loss over (non-ignored) targets; accuracy for classification.

    `forward(batch) -> (loss, logits)` replaces `model(**batch)` (the packed trainer's
    per-member forward); the model's own loss otherwise.
    """
    was_training = model.training
    model.eval()
    loss_sum, weight_sum, correct = 0.0, 0, 0
    for chunk in _chunks(items, batch_size):
        batch = _device_batch(collate(chunk, task, pad_id), model)
        with torch.no_grad(), _autocast(model):
            if forward is None:
                output = model(**batch)
                loss, logits = output.loss, output.logits
            else:
                loss, logits = forward(batch)
        if task == TASK_SEQUENCE_CLASSIFICATION:
            weight = len(chunk)
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
        else:
            weight = int((batch["labels"][:, 1:] != -100).sum())
        loss_sum += float(loss) * weight
        weight_sum += weight
    model.train(was_training)
    metrics = {"eval_loss": loss_sum / max(1, weight_sum)}
    if task == TASK_SEQUENCE_CLASSIFICATION:
        metrics["eval_accuracy"] = correct / max(1, len(items))
    return metrics


def _split(items: list[Encoded], fraction: float, seed: int):
    if fraction <= 0:
        return items, []
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    held = max(1, int(len(items) * fraction))
    return [items[i] for i in order[held:]], [items[i] for i in order[:held]]


def prepare_items(
    examples: Sequence[dict[str, Any]],
    eval_examples: Sequence[dict[str, Any]] | None,
    task: str,
    tokenizer,
    args: TrainingArgs,
    num_labels: int | None = None,
) -> tuple[list[Encoded], list[Encoded]]:
    """Encode and check one user's rows: (training items, eval items); UserInputError
    names what the user must fix. Eval rows come from `eval_examples`, else are held out
    by `args.eval_fraction`."""
    items = encode(examples, task, tokenizer, args.max_length)
    eval_items = (
        encode(eval_examples, task, tokenizer, args.max_length)
        if eval_examples is not None
        else None
    )
    if task == TASK_SEQUENCE_CLASSIFICATION and num_labels and num_labels > 1:
        for name, rows in (("rows", items), ("eval rows", eval_items or [])):
            bad = [i for i, item in enumerate(rows) if not 0 <= int(item.labels) < num_labels]
            if bad:
                raise UserInputError(
                    f"{name} {bad[:5]} (counted from 0) have labels outside 0..{num_labels - 1}",
                    code="label_out_of_range",
                )
    if eval_items is None:
        items, eval_items = _split(items, args.eval_fraction, args.seed)
    if not items:
        raise UserInputError(
            f"no rows left to train on: the dataset has {len(examples)} and eval_fraction="
            f"{args.eval_fraction} holds {len(eval_items)} out; upload more rows or lower "
            "hyperparameters.eval_fraction",
            code="too_few_rows",
        )
    return items, eval_items


@dataclass
class _Run:
    model: nn.Module
    config: VeraConfig
    args: TrainingArgs
    items: list[Encoded]
    pad_id: int
    progress: Callable[[Progress], None] | None
    should_cancel: Callable[[], bool] | None


def _loop(run: _Run) -> dict[str, Any]:
    args, model = run.args, run.model
    total = total_steps(len(run.items), args)
    optimizer = _optimizer(model, run.config, args)
    scheduler = build_scheduler(optimizer, total, args)
    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    order = BatchOrder(len(run.items), args.batch_size, args.seed)
    step, tokens, loss_value, started = 0, 0, float("nan"), time.perf_counter()
    model.train()
    while step < total:
        if run.should_cancel is not None and run.should_cancel():
            raise TrainingCancelled(step)
        chunk = [run.items[i] for i in order.next()]
        batch = _device_batch(collate(chunk, run.config.task, run.pad_id), model)
        with _autocast(model):
            loss = model(**batch).loss
        loss.backward()
        if args.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(trainable, args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens += int(batch["attention_mask"].sum())
        loss_value = float(loss.detach())
        speed = tokens / max(1e-9, time.perf_counter() - started)
        if run.progress is not None:
            run.progress(Progress(step, total, loss_value, speed))
    elapsed = time.perf_counter() - started
    return {
        "steps": step,
        "final_loss": loss_value,
        "tokens": tokens,
        "tokens_per_second": tokens / max(1e-9, elapsed),
        "train_seconds": elapsed,
    }


def train(
    model: nn.Module,
    examples: Sequence[dict[str, Any]],
    config: VeraConfig,
    args: TrainingArgs | None = None,
    *,
    tokenizer=None,
    eval_examples: Sequence[dict[str, Any]] | None = None,
    warm_start: dict[str, torch.Tensor] | None = None,
    expected_fingerprint: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Train VeRA vectors (and the head, for classification) on `examples`.

    `warm_start` is a PEFT-named state dict (a previous version's vectors). The model is
    left as it came: VeRA removed, head weights and trainability restored.
    """
    args = args or TrainingArgs()
    torch.manual_seed(args.seed)  # dropout masks; shuffling uses its own seeded RNG
    num_labels = getattr(getattr(model, "config", None), "num_labels", None)
    items, eval_items = prepare_items(
        examples, eval_examples, config.task, tokenizer, args, num_labels
    )
    pad_id = pad_token_id(tokenizer, getattr(model, "config", None))
    saved_heads = {
        path: {k: v.detach().clone() for k, v in head.state_dict().items()}
        for path, head in head_modules(model, config).items()
    }
    was_trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    was_training = model.training
    inject_vera(model, config, expected_fingerprint)
    try:
        _reset_heads(model, config, args.seed)
        if warm_start is not None:
            load_adapter_state_dict(model, warm_start)
        run = _Run(model, config, args, items, pad_id, progress, should_cancel)
        metrics = _loop(run)
        if eval_items:
            metrics |= evaluate(model, eval_items, config.task, pad_id, args.eval_batch_size)
        vectors = adapter_state_dict(model)
        metrics["projection_fingerprint"] = model.vera_projection.fingerprint
    finally:
        remove_vera(model)
        _restore(model, saved_heads, was_trainable, was_training)
    head_keys = {k for k in vectors if not k.endswith(("vera_lambda_b", "vera_lambda_d"))}
    return TrainingResult(vectors, {k: vectors[k] for k in head_keys}, metrics)


def _restore(model: nn.Module, heads: dict, trainable: set[str], training: bool) -> None:
    for path, state in heads.items():
        model.get_submodule(path).load_state_dict(state)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in trainable)
    model.train(training)
