"""Train many users' VeRA adapters on one injected model in one loop: a pack.

Every user (a *member*) shares A, B and the base model, so one forward and backward over a
batch that mixes the members' rows costs one `A x` and one `B (·)` per layer; each row is
scaled by its own member's λd and λb (the bank's per-row index, here in training mode).

Each member keeps everything `train()` keeps for one user: its own λ leaves per layer, its
own head (classification: its own number of labels), its own AdamW with train()'s two
param groups, LambdaLR schedule and warmup, batch size, step count, gradient clipping
(its own norm) and seeded batch order. The loss of a step is the sum of the members' own
means, so no member's rows change another member's gradient: with dropout 0 on the CPU a
member's result equals `train()` on that user alone (tests/vera/test_packed.py).

    with PackedTrainer(model, config) as pack:
        pack.add("alice", rows, TrainingArgs(...))
        while (report := pack.step()) is not None:
            ...  # report.finished / report.failed / report.progress

Members may join (`add`) and leave (`remove`) between any two steps. A token budget
(rows × padded width) bounds each step: members that do not fit wait their turn
(round robin); one that alone exceeds it steps alone.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import TASK_SEQUENCE_CLASSIFICATION, VeraConfig
from .data import IGNORE_INDEX, Encoded, collate, pad_token_id
from .inject import (
    PEFT_PREFIX,
    _replace,
    copy_adapter_state,
    detached_copies,
    head_modules,
    inject_vera,
    remove_vera,
    vera_layers,
)
from .train import (
    BatchOrder,
    Progress,
    TrainingArgs,
    TrainingResult,
    _autocast,
    _device_batch,
    _restore,
    build_optimizer,
    build_scheduler,
    evaluate,
    head_init_std,
    prepare_items,
    seed_heads,
    total_steps,
)

CHECKPOINT_FORMAT = "vera-packed-checkpoint/1"


@dataclass
class Member:
    """One user's training state inside a pack."""

    key: str
    args: TrainingArgs
    num_labels: int | None
    total_steps: int
    step: int = 0
    items: list[Encoded] = field(default_factory=list, repr=False)
    eval_items: list[Encoded] = field(default_factory=list, repr=False)
    # {layer path: (λd, λb)}: this member's trainable leaves.
    lambdas: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)
    heads: dict[str, nn.Module] = field(default_factory=dict, repr=False)
    optimizer: torch.optim.Optimizer | None = field(default=None, repr=False)
    scheduler: Any = field(default=None, repr=False)
    order: BatchOrder | None = field(default=None, repr=False)
    tokens: int = 0
    loss: float = float("nan")
    seconds_before: float = 0.0  # training time of earlier runs (resumed from a checkpoint)
    joined: float = field(default_factory=time.perf_counter)

    @property
    def progress(self) -> float:
        return self.step / max(1, self.total_steps)

    @property
    def parameters(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.joined

    def tensors(self) -> dict[str, torch.Tensor]:
        """{PEFT name: live tensor}: the λ leaves and the head's parameters and buffers."""
        named = {}
        for path, (lambda_d, lambda_b) in self.lambdas.items():
            named[f"{PEFT_PREFIX}{path}.vera_lambda_b"] = lambda_b
            named[f"{PEFT_PREFIX}{path}.vera_lambda_d"] = lambda_d
        for path, head in self.heads.items():
            for name, tensor in head.state_dict(keep_vars=True).items():
                named[f"{PEFT_PREFIX}{path}.{name}"] = tensor
        return named

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What `adapter_state_dict` gives for this member alone (detached CPU copies)."""
        return detached_copies(self.tensors())


@dataclass
class StepReport:
    members: list[str]  # keys that stepped
    rows: int
    tokens: int  # real (non-padding) tokens
    padded_tokens: int  # rows × padded width: what the budget bounds
    seconds: float
    progress: dict[str, Progress] = field(default_factory=dict)
    finished: dict[str, TrainingResult] = field(default_factory=dict)
    failed: dict[str, Exception] = field(default_factory=dict)


class _PackedHead(nn.Module):
    """Stands in for a head module during a packed forward: each member's own head on that
    member's rows (consecutive), outputs right-padded with zeros to the widest."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[tuple[nn.Module, int]] = []  # (head, rows); not registered

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch.split: one concatenation in the backward, not K full-size gradients.
        blocks = torch.split(x, [rows for _, rows in self.parts])
        outputs = [head(block) for (head, _), block in zip(self.parts, blocks, strict=True)]
        width = max(output.shape[-1] for output in outputs)
        return torch.cat([F.pad(o, (0, width - o.shape[-1])) for o in outputs])


def _last_linear(module: nn.Module) -> tuple[str, nn.Linear] | None:
    found = None
    for name, child in module.named_modules():
        if isinstance(child, nn.Linear):
            found = (name, child)
    return found


def _member_head(
    template: nn.Module, num_labels: int | None, model_labels: int | None
) -> tuple[nn.Module, nn.Linear | None]:
    """A copy of the model's head, its last projection resized to `num_labels` when that
    differs from the model's; (head, the new projection or None)."""
    head = copy.deepcopy(template)
    head.requires_grad_(True)
    last = _last_linear(head)
    if num_labels is None or last is None or num_labels == model_labels:
        return head, None
    name, old = last
    if old.out_features != model_labels:
        return head, None
    new = nn.Linear(
        old.in_features,
        num_labels,
        bias=old.bias is not None,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    if not name:
        return new, new
    _replace(head, name, new)
    return head, new


class PackedTrainer:
    """K users' VeRA adapters trained on one model in one loop (see the module docstring).

    The model is injected on construction and restored as it came by `close()`.
    """

    def __init__(
        self,
        model: nn.Module,
        config: VeraConfig,
        *,
        expected_fingerprint: str | None = None,
        max_tokens_per_step: int | None = None,
        pad_id: int | None = None,
        tokenizer=None,
        row_path: str = "auto",
    ):
        """`row_path`: how each row meets its member's vectors. "blocks": each member's
        block of rows scaled by its own λ on the path train() would take for it (dense
        or factored), its gradients reduced as train() reduces them, so a step of one
        member is bit-identical to train()'s; "gather": the members' vectors stacked and
        picked per row, a few kernels whatever the member count (blocks costs a few per
        member and layer); "auto": blocks for a step of one member, gather otherwise."""
        if row_path not in ("auto", "blocks", "gather"):
            raise ValueError(f"row_path must be auto, blocks or gather, got {row_path!r}")
        if max_tokens_per_step is not None and max_tokens_per_step <= 0:
            raise ValueError(f"max_tokens_per_step must be positive, got {max_tokens_per_step}")
        self.model, self.config, self.tokenizer = model, config, tokenizer
        self.max_tokens_per_step = max_tokens_per_step
        model_config = getattr(model, "config", None)
        self.pad_id = pad_id if pad_id is not None else pad_token_id(tokenizer, model_config)
        self.model_labels = getattr(model_config, "num_labels", None)
        self.head_std = head_init_std(model)
        self.members: dict[str, Member] = {}
        self._queue: list[str] = []  # round-robin order: waiting members first
        self._was_trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        self._was_training = model.training
        inject_vera(model, config, expected_fingerprint)
        self.row_path = row_path
        self._layers = vera_layers(model)
        for layer in self._layers.values():
            layer.requires_grad_(False)  # the members' leaves train, not the layer's own
        self._projection = model.vera_projection
        self._templates = head_modules(model, config)
        self._packed_heads = {}
        for path in self._templates:
            self._packed_heads[path] = _PackedHead()
            _replace(model, path, self._packed_heads[path])
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> PackedTrainer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove VeRA and put the head modules back: the model as it came."""
        if self._closed:
            return
        self._closed = True
        self.members.clear()
        self._queue.clear()
        for path, template in self._templates.items():
            _replace(self.model, path, template)
        remove_vera(self.model)
        _restore(self.model, {}, self._was_trainable, self._was_training)

    # -- members -------------------------------------------------------------------------

    def add(
        self,
        key: str,
        examples: Sequence[dict[str, Any]],
        args: TrainingArgs,
        *,
        num_labels: int | None = None,
        eval_examples: Sequence[dict[str, Any]] | None = None,
        warm_start: dict[str, torch.Tensor] | None = None,
        checkpoint: bytes | None = None,
        seed_head: bool = True,
    ) -> Member:
        """Encode and check the member's rows (UserInputError: nothing joins), build its
        vectors, head, optimizer and schedule; it steps from the next `step()` on."""
        if self._closed:
            raise RuntimeError("the pack is closed")
        if key in self.members:
            raise ValueError(f"member {key!r} is already in the pack")
        task = self.config.task
        if task == TASK_SEQUENCE_CLASSIFICATION:
            num_labels = num_labels or self.model_labels
        elif num_labels is not None:
            raise ValueError("num_labels is for sequence classification only")
        items, eval_items = prepare_items(
            examples, eval_examples, task, self.tokenizer, args, num_labels
        )
        state = None
        if checkpoint is not None:
            state = torch.load(io.BytesIO(checkpoint), weights_only=True)
            if state.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"not a packed-training checkpoint: {state.get('format')!r}")
            if state["args"] != dataclasses.asdict(args):
                raise ValueError("the checkpoint was written with other training args")
        member = self._build(key, items, eval_items, args, num_labels, seed_head)
        if warm_start is not None:
            copy_adapter_state(member.tensors(), warm_start)
        if state is not None:
            copy_adapter_state(member.tensors(), state["vectors"])
            member.optimizer.load_state_dict(state["optimizer"])
            member.scheduler.load_state_dict(state["scheduler"])
            member.step = int(state["step"])
            if not 0 <= member.step < member.total_steps:
                raise ValueError(
                    f"checkpoint step {member.step} is outside 0..{member.total_steps - 1}"
                )
            member.tokens = int(state["tokens"])
            member.seconds_before = float(state["train_seconds"])
            member.loss = float(state["loss"])
        member.order = BatchOrder(len(items), args.batch_size, args.seed, member.step)
        if not self.members:
            # As train() does: the torch RNG (dropout masks) starts from the seed.
            if state is not None:
                torch.set_rng_state(state["torch_rng"])
            else:
                torch.manual_seed(args.seed)
        member.joined = time.perf_counter()
        self.members[key] = member
        self._queue.append(key)
        return member

    def _build(self, key, items, eval_items, args, num_labels, seed_head) -> Member:
        device = self._projection.vera_A.device
        lambdas = {}
        for path, layer in self._layers.items():
            lambda_d = layer.vera_lambda_d.detach().clone().fill_(self.config.d_initial)
            lambda_b = torch.zeros_like(layer.vera_lambda_b, device=device)
            lambdas[path] = (lambda_d.requires_grad_(True), lambda_b.requires_grad_(True))
        heads, resized = {}, []
        for path, template in self._templates.items():
            heads[path], projection = _member_head(template, num_labels, self.model_labels)
            if projection is not None and (projection is not heads[path] or not seed_head):
                resized.append(projection)  # not drawn by train()'s head seeding below
        if seed_head:
            # Exactly train()'s draw: one generator over the heads in order.
            seed_heads(list(heads.values()), self.head_std, args.seed)
        for projection in resized:
            seed_heads([projection], self.head_std, args.seed)
        vectors = [t for pair in lambdas.values() for t in pair]
        head_params = [p for head in heads.values() for p in head.parameters()]
        optimizer = build_optimizer(vectors, head_params, args)
        total = total_steps(len(items), args)
        return Member(
            key=key,
            args=args,
            num_labels=num_labels,
            total_steps=total,
            items=items,
            eval_items=eval_items,
            lambdas=lambdas,
            heads=heads,
            optimizer=optimizer,
            scheduler=build_scheduler(optimizer, total, args),
        )

    def remove(self, key: str) -> None:
        """Take a member out (cancelled): it is not in the next step; others are untouched."""
        self.members.pop(key)
        self._queue.remove(key)

    def checkpoint(self, key: str) -> bytes:
        """One member's full training state; `add(..., checkpoint=...)` resumes from it."""
        member = self.members[key]
        state = {
            "format": CHECKPOINT_FORMAT,
            "key": key,
            "step": member.step,
            "total_steps": member.total_steps,
            "vectors": member.state_dict(),
            "optimizer": member.optimizer.state_dict(),
            "scheduler": member.scheduler.state_dict(),
            "args": dataclasses.asdict(member.args),
            "num_labels": member.num_labels,
            "tokens": member.tokens,
            "train_seconds": member.seconds(),
            "loss": member.loss,
            "torch_rng": torch.get_rng_state(),
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    # -- stepping --------------------------------------------------------------------------

    def _select(self) -> list[Member]:
        """Members for the next step, in queue order, within the token budget."""
        chosen, rows, width = [], 0, 0
        for key in self._queue:
            member = self.members[key]
            batch = [member.items[i] for i in member.order.peek()]
            new_rows = rows + len(batch)
            new_width = max(width, max(len(item.input_ids) for item in batch))
            budget = self.max_tokens_per_step
            if chosen and budget is not None and new_rows * new_width > budget:
                continue
            chosen.append(member)
            rows, width = new_rows, new_width
        return chosen

    def _forward(
        self, members: list[Member], rows: list[int], batch: dict[str, torch.Tensor]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(loss, logits) per member over a batch of the members' consecutive rows."""
        for path, layer in self._layers.items():
            layer.member_lambdas = [m.lambdas[path] for m in members]
        for path, packed in self._packed_heads.items():
            packed.parts = [(m.heads[path], count) for m, count in zip(members, rows, strict=True)]
        blocks = self.row_path == "blocks" or (self.row_path == "auto" and len(rows) == 1)
        if blocks:
            self._projection.row_counts = rows
        else:
            device = batch["input_ids"].device
            self._projection.row_slots = torch.repeat_interleave(
                torch.arange(len(rows), device=device), torch.tensor(rows, device=device)
            )
        try:
            with _autocast(self.model):
                logits = self.model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits
        finally:
            self._projection.row_counts = self._projection.row_slots = None
            for layer in self._layers.values():
                layer.member_lambdas = None
            for packed in self._packed_heads.values():
                packed.parts = []
        own_logits, own_labels = torch.split(logits, rows), torch.split(batch["labels"], rows)
        return [
            _member_loss(member_logits, labels, member.num_labels)
            for member, member_logits, labels in zip(members, own_logits, own_labels, strict=True)
        ]

    def _probe(self, members: list[Member]) -> dict[str, Exception]:
        """Which members fail alone on their own rows of this step."""
        failed = {}
        for member in members:
            chunk = [member.items[i] for i in member.order.peek()]
            batch = _device_batch(collate(chunk, self.config.task, self.pad_id), self.model)
            try:
                with torch.no_grad():
                    self._forward([member], [len(chunk)], batch)
            except Exception as error:  # the member's own failure
                failed[member.key] = error
        return failed

    def step(self) -> StepReport | None:
        """One packed forward/backward and one optimizer step per stepped member; None when
        no member is left to train."""
        if not self.members:
            return None
        started = time.perf_counter()
        chosen = self._select()
        failed: dict[str, Exception] = {}
        self.model.train()
        while chosen:
            chunks = [[m.items[i] for i in m.order.peek()] for m in chosen]
            rows = [len(chunk) for chunk in chunks]
            flat = [item for chunk in chunks for item in chunk]
            batch = _device_batch(collate(flat, self.config.task, self.pad_id), self.model)
            try:
                results = self._forward(chosen, rows, batch)
                torch.stack([loss for loss, _ in results]).sum().backward()
                break
            except Exception:
                for member in chosen:
                    member.optimizer.zero_grad(set_to_none=True)
                culprits = self._probe(chosen)
                if not culprits:
                    raise
                failed |= culprits
                for key in culprits:
                    self.remove(key)
                chosen = [m for m in chosen if m.key not in culprits]
        report = StepReport(
            members=[m.key for m in chosen],
            rows=sum(rows) if chosen else 0,
            tokens=int(batch["attention_mask"].sum()) if chosen else 0,
            padded_tokens=batch["input_ids"].numel() if chosen else 0,
            seconds=0.0,
            failed=failed,
        )
        if chosen:
            self._apply(chosen, rows, results, batch, report)
        report.seconds = time.perf_counter() - started
        return report

    def _apply(self, chosen, rows, results, batch, report: StepReport) -> None:
        mask = batch["attention_mask"]
        start = 0
        for member, count, (loss, _) in zip(chosen, rows, results, strict=True):
            if member.args.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(member.parameters, member.args.max_grad_norm)
            member.optimizer.step()
            member.scheduler.step()
            member.optimizer.zero_grad(set_to_none=True)
            member.order.next()
            member.step += 1
            member.tokens += int(mask[start : start + count].sum())
            start += count
            member.loss = float(loss.detach())
            speed = member.tokens / max(1e-9, member.seconds())
            report.progress[member.key] = Progress(
                member.step, member.total_steps, member.loss, speed
            )
        # Stepped members go to the back of the queue: those that waited come first.
        stepped = {m.key for m in chosen}
        self._queue = [k for k in self._queue if k not in stepped] + [m.key for m in chosen]
        for member in chosen:
            if member.step >= member.total_steps:
                self.remove(member.key)
                try:
                    report.finished[member.key] = self._result(member)
                except Exception as error:  # its own eval rows failed
                    report.failed[member.key] = error

    def _result(self, member: Member) -> TrainingResult:
        elapsed = member.seconds()
        metrics: dict[str, Any] = {
            "steps": member.step,
            "final_loss": member.loss,
            "tokens": member.tokens,
            "tokens_per_second": member.tokens / max(1e-9, elapsed),
            "train_seconds": elapsed,
        }
        if member.eval_items:

            def forward(batch):
                return self._forward([member], [batch["input_ids"].shape[0]], batch)[0]

            metrics |= evaluate(
                self.model,
                member.eval_items,
                self.config.task,
                self.pad_id,
                member.args.eval_batch_size,
                forward=forward,
            )
        metrics["projection_fingerprint"] = self._projection.fingerprint
        vectors = member.state_dict()
        head_keys = {k for k in vectors if not k.endswith(("vera_lambda_b", "vera_lambda_d"))}
        return TrainingResult(vectors, {k: vectors[k] for k in head_keys}, metrics)


def _member_loss(
    logits: torch.Tensor, labels: torch.Tensor, num_labels: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits) of one member's rows, as transformers computes it for that user alone:
    classification = mean cross-entropy over its rows (MSE when it has one label);
    causal-LM = mean over its non-ignored next-token targets."""
    if num_labels is not None:
        logits = logits[:, :num_labels]
        if num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype)), logits
        return F.cross_entropy(logits.float().reshape(-1, num_labels), labels.reshape(-1)), logits
    shifted = logits[:, :-1].float()
    loss = F.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
    )
    return loss, logits
