"""Per-row generation settings and the choice of each row's next token.

Sampling draws one uniform number per row from that row's own CPU generator and picks by
inverse CDF over the filtered distribution, so a seeded row gives the same tokens whatever
its batch-mates (and the filtering stays batched on the device).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from registry.client.textstream import RowText


@dataclass
class Row:
    prompt: list[int]
    max_new_tokens: int
    sample: bool
    temperature: float
    top_p: float
    top_k: int
    generator: torch.Generator
    text: RowText | None
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None

    def push(self, token: int, eos: set[int]) -> bool:
        """Record a generated token; False once the row is finished."""
        self.tokens.append(token)
        if token in eos:
            self.finish_reason = "stop"
        elif self.text is not None:
            self.text.add(token)
            if self.text.stopped:
                self.finish_reason = "stop"
        if self.finish_reason is None and len(self.tokens) >= self.max_new_tokens:
            self.finish_reason = "length"
        if self.finish_reason is not None and self.text is not None:
            self.text.finish()
            if self.text.stopped:  # the held-back end may complete a stop sequence
                self.finish_reason = "stop"
        return self.finish_reason is None


def per_row(name: str, value: Any, rows: int) -> list[Any]:
    """A scalar for every row, or one value per row."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value] * rows
    if len(value) != rows:
        raise ValueError(f"{name} has {len(value)} values for {rows} rows: give one per row")
    return list(value)


def _stops_per_row(stop: Any, rows: int) -> list[tuple[str, ...]]:
    if stop is None:
        return [()] * rows
    if isinstance(stop, str):
        return [(stop,)] * rows
    if all(isinstance(s, str) for s in stop):  # one list for every row
        return [tuple(stop)] * rows
    return [(s,) if isinstance(s, str) else tuple(s or ()) for s in per_row("stop", stop, rows)]


def _check_settings(row: int, new: Any, temperature: Any, top_p: Any, top_k: Any) -> None:
    problems = []
    if isinstance(new, bool) or not isinstance(new, int) or new < 0:
        problems.append(f"max_new_tokens must be an integer ≥ 0, got {new!r}")
    if not isinstance(temperature, (int, float)) or not 0 <= temperature < math.inf:
        problems.append(f"temperature must be a finite number ≥ 0, got {temperature!r}")
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        problems.append(f"top_p must be in (0, 1], got {top_p!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        problems.append(f"top_k must be an integer ≥ 0 (0: no limit), got {top_k!r}")
    if problems:
        raise ValueError(f"row {row}: " + "; ".join(problems))


def _prompt_ids(row: int, prompt: Any, tokenizer: Any, vocab: int) -> list[int]:
    if isinstance(prompt, str):
        if tokenizer is None:
            raise ValueError("text prompts need a tokenizer: pass tokenizer= or token ids")
        ids = list(tokenizer(prompt)["input_ids"])
    else:
        ids = [int(t) for t in prompt]
    if not ids:
        raise ValueError(f"row {row}: the prompt is empty; give at least one token")
    bad = [t for t in ids if not 0 <= t < vocab]
    if bad:
        raise ValueError(f"row {row}: token ids {bad[:5]} are outside the vocabulary [0, {vocab})")
    return ids


def _generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()  # a fresh random seed
    else:
        generator.manual_seed(seed)
    return generator


def eos_token_ids(model: torch.nn.Module, tokenizer: Any) -> set[int]:
    """The model's end-of-sequence ids (generation config, config) and the tokenizer's."""
    found: set[int] = set()
    configs = (getattr(model, "generation_config", None), getattr(model, "config", None))
    for value in [getattr(c, "eos_token_id", None) for c in configs] + [
        getattr(tokenizer, "eos_token_id", None)
    ]:
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, (list, tuple)):
            found.update(int(v) for v in value)
    return found


def make_rows(
    model: torch.nn.Module, tokenizer: Any, prompts: Sequence[Any], options: dict[str, Any]
) -> list[Row]:
    """Check and expand the per-row settings (ValueError naming the row otherwise)."""
    n = len(prompts)
    expanded = {name: per_row(name, options[name], n) for name in _SETTINGS}
    stops = _stops_per_row(options.get("stop"), n)
    if tokenizer is None and any(stops):
        raise ValueError("stop sequences need a tokenizer (they match decoded text)")
    vocab = model.get_input_embeddings().num_embeddings
    context = getattr(model.config, "max_position_embeddings", None)
    rows = []
    for i, prompt in enumerate(prompts):
        new, sample, temperature, top_p, top_k, seed = (expanded[k][i] for k in _SETTINGS)
        _check_settings(i, new, temperature, top_p, top_k)
        ids = _prompt_ids(i, prompt, tokenizer, vocab)
        if context and len(ids) + new > context:
            raise ValueError(
                f"row {i}: the prompt's {len(ids)} tokens + max_new_tokens {new} exceed the "
                f"model's context of {context} tokens; shorten the prompt or ask for fewer"
            )
        text = RowText(tokenizer, ids, stops[i]) if tokenizer is not None else None
        rows.append(
            Row(ids, new, bool(sample) and temperature > 0, float(temperature), float(top_p),
                 top_k, _generator(seed), text)
        )  # fmt: skip
    return rows


_SETTINGS = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "seed")


def choose(logits: torch.Tensor, rows: Sequence[Row]) -> list[int]:
    """Each row's next token: argmax, or a draw from its filtered distribution."""
    logits = logits.float()
    chosen = logits.argmax(-1)
    sampled = [j for j, row in enumerate(rows) if row.sample]
    if sampled:
        device = logits.device
        index = torch.tensor(sampled, device=device)
        picks = [rows[j] for j in sampled]

        def column(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, device=device, dtype=torch.float32)[:, None]

        scaled = logits.index_select(0, index) / column([r.temperature for r in picks])
        ordered, order = scaled.sort(-1, descending=True)
        vocab = ordered.shape[-1]
        positions = torch.arange(vocab, device=device)[None, :]
        top_k = column([r.top_k or vocab for r in picks])
        probs = ordered.masked_fill(positions >= top_k, -math.inf).softmax(-1)
        # top_p: keep the smallest prefix of tokens whose mass reaches top_p.
        probs = probs.masked_fill(probs.cumsum(-1) - probs >= column([r.top_p for r in picks]), 0)
        cdf = probs.cumsum(-1)
        uniform = column([torch.rand((), generator=r.generator).item() for r in picks])
        choice = torch.searchsorted(cdf, uniform * cdf[:, -1:], right=True)
        last_kept = (probs > 0).sum(-1, keepdim=True) - 1  # kept tokens form a prefix
        choice = torch.minimum(choice, last_kept)
        chosen[index] = order.gather(1, choice).squeeze(1)
    return chosen.tolist()
