"""Batched decoding for `ServingRuntime.generate`: a user, prompt and settings per row.

The prompts are left-padded into one batch (attention mask, position ids counted from
each row's first real token), run once, then decoded one token per row per step with the
model's KV cache. A row that ends (eos, a stop sequence, its max_new_tokens) leaves the
batch: its cache rows are dropped so later steps no longer compute it.

Settings per row and the token choice (greedy, or sampled with a per-row seed) are in
`registry.client.sampling`; the text of a row (stop sequences, streaming) in
`registry.client.textstream`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from registry.client.sampling import Row, choose, eos_token_ids, make_rows
from registry.vera.config import TASK_CAUSAL_LM, TASK_SEQUENCE_CLASSIFICATION

__all__ = ["BASE_ROW", "Classification", "Generation", "RuntimeMismatch", "TextTasks", "generate"]

BASE_ROW = "\x00base"  # the bank row of zero vectors that `None` rows use


class RuntimeMismatch(ValueError):
    """An adapter does not fit this runtime (projection, targets, base model or task)."""


# Runs the model on a batch whose row i belongs to users[i]: (users, **model inputs).
ModelCall = Callable[..., Any]


@dataclass(frozen=True)
class Generation:
    text: str  # decoded completion only (no prompt), cut before a stop sequence
    token_ids: list[int]  # completion tokens (stop sequence excluded from text only)
    finish_reason: str  # "stop" (eos or stop sequence) | "length"
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Classification:
    label: str  # label name (LoadedUser.labels) or str(index) when none recorded
    index: int
    scores: dict[str, float]  # softmax probability per label name


def classification(logits: torch.Tensor, labels: Sequence[Any] | None) -> Classification:
    """A row's label from its logits; label names where the adapter recorded them."""
    probs = logits.float().softmax(-1).tolist()
    names = [str(labels[i]) if labels and i < len(labels) else str(i) for i in range(len(probs))]
    index = max(range(len(probs)), key=probs.__getitem__)
    return Classification(names[index], index, dict(zip(names, probs, strict=True)))


def _left_pad(prompts: list[list[int]], pad: int, device: torch.device) -> dict[str, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt)
        mask[i, width - len(prompt) :] = 1
    # Positions count from each row's first real token, as if it were alone.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "position_ids": positions.to(device),
    }


def _cache_names(model: torch.nn.Module) -> tuple[str, bool]:
    """The forward's KV-cache argument (`cache` since transformers 5, `past_key_values`
    before) and whether it takes `logits_to_keep` (no full-vocab logits for the prompt)."""
    params = inspect.signature(model.forward).parameters
    return ("cache" if "cache" in params else "past_key_values"), "logits_to_keep" in params


@torch.no_grad()  # not inference_mode: the VeRA `A x` cache reads tensor version counters
def generate(
    model: torch.nn.Module,
    call: ModelCall,
    users: Sequence[str],
    rows: list[Row],
    *,
    eos: set[int],
    pad_id: int,
    on_token: Callable[[int, str], None] | None = None,
) -> list[Generation]:
    """Decode every row to its end; `call(users, **inputs)` runs the model for those rows."""
    device = model.get_input_embeddings().weight.device
    cache_arg, keep_arg = _cache_names(model)
    active = [i for i, row in enumerate(rows) if row.max_new_tokens > 0]
    for row in rows:
        if row.max_new_tokens == 0:
            row.finish_reason = "length"
    if active:
        inputs = _left_pad([rows[i].prompt for i in active], pad_id, device)
        extra = {"logits_to_keep": 1} if keep_arg else {}
        out = call([users[i] for i in active], **inputs, use_cache=True, **extra)
        mask, positions = inputs["attention_mask"], inputs["position_ids"][:, -1:]
        while True:
            tokens = choose(out.logits[:, -1, :], [rows[i] for i in active])
            keep = []
            for j, (i, token) in enumerate(zip(active, tokens, strict=True)):
                running = rows[i].push(token, eos)
                if running:
                    keep.append(j)
                text = rows[i].text
                piece = text.delta(done=not running) if text is not None else ""
                if piece and on_token is not None:
                    on_token(i, piece)
            if not keep:
                break
            cache = getattr(out, cache_arg, None)
            if len(keep) < len(active):  # finished rows leave the batch and its cache
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask, positions = mask.index_select(0, index), positions.index_select(0, index)
                active, tokens = [active[j] for j in keep], [tokens[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            positions = positions + 1
            step = {"input_ids": torch.tensor(tokens, device=device)[:, None], cache_arg: cache}
            out = call(
                [users[i] for i in active],
                **step,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
            )
    return [_result(row) for row in rows]


def _result(row: Row) -> Generation:
    return Generation(
        text=row.text.text if row.text is not None else "",
        token_ids=list(row.tokens),
        finish_reason=row.finish_reason or "length",
        prompt_tokens=len(row.prompt),
        completion_tokens=len(row.tokens),
    )


class TextTasks:
    """`ServingRuntime.generate` and `classify`: a user per row, text in, text out.

    Needs the runtime's `model`, `tokenizer`, `task`, `bank`, `users` and `_lock`. The
    lock is held for a whole call: a hot swap applies between calls, never mid-decode.
    """

    model: torch.nn.Module
    tokenizer: Any
    task: str
    bank: Any
    users: dict[str, Any]
    _lock: Any

    def _rows(self, users: Sequence[str | None], rows: int, task: str, what: str) -> list[str]:
        """Bank rows for the users (None: the base row); refuses another task's runtime."""
        if self.task != task:
            raise RuntimeMismatch(
                f"{what} needs a {task} runtime; this one serves {self.task} adapters"
            )
        if len(users) != rows:
            raise ValueError(f"got {len(users)} users for {rows} rows: give one user per row")
        ids = [BASE_ROW if user is None else user for user in users]
        unknown = sorted({u for u in ids if u not in self.bank})
        if unknown:
            raise KeyError(f"users not loaded: {unknown[:5]}; call load_user first")
        return ids

    def _call_rows(self, users: Sequence[str], **inputs: Any) -> Any:
        with self.bank.users(users):
            return self.model(**inputs)

    def generate(
        self,
        users: Sequence[str | None],
        prompts: Sequence[str | Sequence[int]],
        *,
        max_new_tokens: int | Sequence[int] = 16,
        do_sample: bool | Sequence[bool] = False,
        temperature: float | Sequence[float] = 1.0,
        top_p: float | Sequence[float] = 1.0,
        top_k: int | Sequence[int] = 0,
        stop: Sequence[str] | Sequence[Sequence[str]] | None = None,
        seed: int | Sequence[int | None] | None = None,
        on_token: Callable[[int, str], None] | None = None,
    ) -> list[Generation]:
        """Complete each prompt (text, or token ids) with its row's user's adapter (None:
        the base model). Each setting is one value for every row or one per row; `stop`
        is a list of strings for every row or a list of lists, one per row. Greedy unless
        `do_sample` (temperature 0 is greedy too); `top_k` 0 means no limit; a row's draws
        depend only on its `seed` (None: random). `on_token(row, text)` gets each row's
        text as it becomes final (text that may start a stop sequence is held back)."""
        options = {
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "seed": seed,
            "stop": stop,
        }
        with self._lock:
            rows = self._rows(users, len(prompts), TASK_CAUSAL_LM, "generate")
            state = make_rows(self.model, self.tokenizer, prompts, options)
            pad = getattr(self.tokenizer, "pad_token_id", None)
            return generate(
                self.model,
                self._call_rows,
                rows,
                state,
                eos=eos_token_ids(self.model, self.tokenizer),
                pad_id=pad if isinstance(pad, int) else 0,
                on_token=on_token,
            )

    @torch.no_grad()
    def classify(self, users: Sequence[str | None], texts: Sequence[str]) -> list[Classification]:
        """Each text's label under its row's user's classifier (a user is required: the
        base model has no trained head)."""
        if self.task == TASK_SEQUENCE_CLASSIFICATION and any(u is None for u in users):
            raise RuntimeMismatch(
                "classify needs a user per row: the base model's head is untrained, "
                "so a row without an adapter has no meaningful label"
            )
        with self._lock:
            rows = self._rows(users, len(texts), TASK_SEQUENCE_CLASSIFICATION, "classify")
            if self.tokenizer is None:
                raise ValueError("classify needs a tokenizer: pass tokenizer= to ServingRuntime")
            device = self.model.vera_projection.vera_A.device
            batch = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
            logits = self._call_rows(rows, **{k: v.to(device) for k, v in batch.items()}).logits
        labels = [self.users[u].labels if u in self.users else None for u in rows]
        return [classification(row, names) for row, names in zip(logits, labels, strict=True)]
