"""Many users' VeRA vectors in one model, chosen per batch row.

Since A and B are shared by every user, a batch mixing users costs one `A x` and one
`B (·)` per layer; only the per-row scaling by λd and λb differs. Each adapted layer
keeps a bank: λd as (capacity × r), λb as (capacity × d_out); a user owns one slot.

    bank = AdapterBank(model)          # model injected with inject_vera
    bank.put("alice", vectors)         # PEFT-named tensors, e.g. from read_adapter()
    with bank.users(["alice", "bob", "alice"]):
        logits = model(**batch).logits  # row i uses that user's vectors

Putting or dropping a user writes that user's rows only: O(size of the vectors), the
base weights are never touched. Capacity doubles when full (amortised O(1) per user).

Heads (`modules_to_save`, e.g. a classifier) come along: a user's head tensors are kept
with its vectors and applied to that user's rows (`heads.RowHeads`); rows of users without
one keep the base model's head. `close()` removes the head hooks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .heads import RowHeads
from .inject import PEFT_PREFIX, head_modules, vera_layers


class AdapterBank:
    def __init__(self, model: nn.Module, capacity: int = 8):
        if not hasattr(model, "vera_projection"):
            raise ValueError("AdapterBank needs a model injected with inject_vera")
        self.model = model
        self.projection = model.vera_projection
        self.layers = vera_layers(model)
        self.slots: dict[str, int] = {}
        # Head weights (modules_to_save) kept per user, applied per row by `_row_heads`.
        self.heads: dict[str, dict[str, torch.Tensor]] = {}
        config = getattr(model, "vera_config", None)
        self._row_heads = RowHeads(head_modules(model, config) if config else {}, self.heads)
        self._free: list[int] = []
        self._capacity = 0
        self._grow(capacity)

    def __len__(self) -> int:
        return len(self.slots)

    def __contains__(self, user: str) -> bool:
        return user in self.slots

    def _grow(self, capacity: int) -> None:
        for layer in self.layers.values():
            extra = capacity - layer.bank_lambda_d.shape[0]
            layer.bank_lambda_d = torch.cat(
                [layer.bank_lambda_d, layer.bank_lambda_d.new_zeros(extra, layer.r)]
            )
            layer.bank_lambda_b = torch.cat(
                [layer.bank_lambda_b, layer.bank_lambda_b.new_zeros(extra, layer.d_out)]
            )
        self._free.extend(range(capacity - 1, self._capacity - 1, -1))
        self._capacity = capacity

    def _split(self, vectors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        lambdas = {}
        for path, layer in self.layers.items():
            for name, size in (("vera_lambda_d", layer.r), ("vera_lambda_b", layer.d_out)):
                key = f"{PEFT_PREFIX}{path}.{name}"
                if key not in vectors:
                    raise KeyError(f"vectors lack {key}")
                if tuple(vectors[key].shape) != (size,):
                    raise ValueError(
                        f"{key} has shape {tuple(vectors[key].shape)}, this layer needs ({size},)"
                    )
                lambdas[key] = vectors[key]
        return lambdas

    def put(self, user: str, vectors: dict[str, torch.Tensor]) -> int:
        """Add or replace a user's vectors (PEFT names); returns the user's slot."""
        lambdas = self._split(vectors)
        if user not in self.slots:
            if not self._free:
                self._grow(max(1, 2 * self._capacity))
            self.slots[user] = self._free.pop()
        slot = self.slots[user]
        with torch.no_grad():
            for path, layer in self.layers.items():
                layer.bank_lambda_d[slot] = lambdas[f"{PEFT_PREFIX}{path}.vera_lambda_d"]
                layer.bank_lambda_b[slot] = lambdas[f"{PEFT_PREFIX}{path}.vera_lambda_b"]
        self.heads[user] = {k: v for k, v in vectors.items() if k not in lambdas}
        return slot

    def drop(self, user: str) -> None:
        """Forget a user; the slot is zeroed and reused."""
        slot = self.slots.pop(user)
        self.heads.pop(user, None)
        with torch.no_grad():
            for layer in self.layers.values():
                layer.bank_lambda_d[slot].zero_()
                layer.bank_lambda_b[slot].zero_()
        self._free.append(slot)

    def slot_index(self, users: Sequence[str]) -> torch.Tensor:
        unknown = sorted({u for u in users if u not in self.slots})
        if unknown:
            raise KeyError(f"users not in the bank: {unknown[:5]}")
        device = self.projection.vera_A.device
        return torch.tensor([self.slots[u] for u in users], dtype=torch.long, device=device)

    @contextmanager
    def users(self, users: Sequence[str]) -> Iterator[None]:
        """Within the block, batch row i runs with the vectors of `users[i]`."""
        previous = self.projection.row_slots, self._row_heads.rows
        self.projection.row_slots = self.slot_index(users)
        self._row_heads.rows = list(users)
        try:
            yield
        finally:
            self.projection.row_slots, self._row_heads.rows = previous

    def close(self) -> None:
        """Remove the head hooks from the model (the bank applies no heads afterwards)."""
        self._row_heads.close()
