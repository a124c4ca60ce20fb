"""Per-row heads (`modules_to_save`, e.g. a classifier) for an `AdapterBank`.

Each user's head tensors are applied to that user's rows only. The head module's output is
recomputed for each distinct user of the batch with that user's weights
(`torch.func.functional_call`); rows of users whose adapter carries no head keep the base
model's head. That is one small extra head call per distinct user, nothing else in the
model is duplicated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from .inject import PEFT_PREFIX


class RowHeads:
    """Forward hooks on the head modules that swap in each row's user's head weights.

    `weights` is the bank's {user: PEFT-named head tensors}, read at forward time, so a
    hot swap of a user's head applies from the next forward on.
    """

    def __init__(
        self, modules: Mapping[str, nn.Module], weights: Mapping[str, Mapping[str, torch.Tensor]]
    ) -> None:
        self.weights = weights
        self.rows: Sequence[str] | None = None  # the batch's user per row, while in use
        self._hooks = [
            module.register_forward_hook(self._hook(path)) for path, module in modules.items()
        ]

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def _groups(self, prefix: str) -> dict[str, list[int]]:
        """The rows of each user whose adapter has tensors for this head."""
        groups: dict[str, list[int]] = {}
        for row, user in enumerate(self.rows or ()):
            if any(k.startswith(prefix) for k in self.weights.get(user, {})):
                groups.setdefault(user, []).append(row)
        return groups

    def _hook(self, path: str) -> Callable[..., torch.Tensor | None]:
        prefix = f"{PEFT_PREFIX}{path}."

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
            if self.rows is None or not args or not isinstance(output, torch.Tensor):
                return None
            groups = self._groups(prefix)
            if not groups:
                return None
            output = output.clone()
            x = args[0]
            rows, self.rows = self.rows, None  # functional_call runs this hook again: let it pass
            try:
                for user, members in groups.items():
                    params = {
                        k[len(prefix) :]: v
                        for k, v in self.weights[user].items()
                        if k.startswith(prefix)
                    }
                    index = torch.tensor(members, device=x.device)
                    out = torch.func.functional_call(module, params, (x.index_select(0, index),))
                    output.index_copy_(0, index, out.to(output.dtype))
            finally:
                self.rows = rows
            return output

        return hook
