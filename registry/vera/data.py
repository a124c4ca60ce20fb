"""Examples → token ids → padded batches, for the two tasks.

Example rows (one JSON object per dataset line):

* causal-lm: `{"text": ...}` (loss on every token) or `{"prompt": ..., "completion": ...}`
  (loss on the completion only: prompt positions are labelled -100).
* sequence-classification: `{"text": ..., "label": <int>}`.
* either task: `{"input_ids": [...]}` (+ `"labels"` / `"label"`) for pre-tokenized data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from registry.jobs.errors import UserInputError

from .config import TASK_CAUSAL_LM, TASK_SEQUENCE_CLASSIFICATION

IGNORE_INDEX = -100  # positions PyTorch's cross-entropy (and transformers) skip


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int] | int


def _ids(tokenizer, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def encode_causal(example: dict[str, Any], tokenizer, max_length: int) -> Encoded:
    if "input_ids" in example:
        ids = list(example["input_ids"])[:max_length]
        labels = list(example.get("labels", ids))[:max_length]
        return Encoded(ids, labels)
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if "prompt" in example:
        prompt = _ids(tokenizer, example["prompt"], special=True)
        completion = _ids(tokenizer, example["completion"], special=False) + eos
        ids = (prompt + completion)[:max_length]
        labels = ([IGNORE_INDEX] * len(prompt) + completion)[:max_length]
        return Encoded(ids, labels)
    ids = (_ids(tokenizer, example["text"], special=True) + eos)[:max_length]
    return Encoded(ids, list(ids))


def encode_classification(example: dict[str, Any], tokenizer, max_length: int) -> Encoded:
    if "input_ids" in example:
        return Encoded(list(example["input_ids"])[:max_length], int(example["label"]))
    encoded = tokenizer(example["text"], truncation=True, max_length=max_length)
    return Encoded(list(encoded["input_ids"]), int(example["label"]))


def encode(
    examples: Sequence[dict[str, Any]], task: str, tokenizer, max_length: int
) -> list[Encoded]:
    encode_one = encode_causal if task == TASK_CAUSAL_LM else encode_classification
    if tokenizer is None and any("input_ids" not in example for example in examples):
        raise ValueError("examples without input_ids need a tokenizer")
    encoded = [encode_one(example, tokenizer, max_length) for example in examples]
    empty = [i for i, item in enumerate(encoded) if not item.input_ids]
    if empty:
        raise UserInputError(
            f"rows {empty[:5]} (counted from 0, blank lines skipped) encode to no tokens; "
            "give them text or remove them",
            code="empty_rows",
        )
    return encoded


def collate(items: Sequence[Encoded], task: str, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels (shifted inside the model for LM)."""
    width = max(len(item.input_ids) for item in items)
    input_ids = torch.full((len(items), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        input_ids[row, : len(item.input_ids)] = torch.tensor(item.input_ids)
        attention_mask[row, : len(item.input_ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if task == TASK_SEQUENCE_CLASSIFICATION:
        batch["labels"] = torch.tensor([int(item.labels) for item in items], dtype=torch.long)
    else:
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        for row, item in enumerate(items):
            labels[row, : len(item.labels)] = torch.tensor(item.labels)
        batch["labels"] = labels
    return batch


def pad_token_id(tokenizer, model_config) -> int:
    for source in (tokenizer, model_config):
        for name in ("pad_token_id", "eos_token_id"):
            value = getattr(source, name, None) if source is not None else None
            if isinstance(value, int):
                return value
    return 0
