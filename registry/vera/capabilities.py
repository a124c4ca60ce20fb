"""What a base model can train, and whether a job fits it (torch-free).

The facts are computed where the weights are (`registry.vera.describe`, on the client at
registration, and on the worker for the model it loaded) and recorded with the base model:

    {"max_positions": 512,                      # longest input its positions cover, or null
     "tasks": {task: {"layers": {path: [d_in, d_out]}}},  # on the class that task trains
     "unsupported": {task: "why not"}}

`job_problems` is the one rule a job is checked by: at submit against the recorded facts
(422), and on the worker against the loaded model (a user error, never retried).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .config import (
    SEQ_CLS_HEAD_NAMES,
    TASK_CAUSAL_LM,
    TASK_SEQUENCE_CLASSIFICATION,
    VeraConfig,
    max_dims,
)


def fresh_heads(task: str) -> tuple[str, ...]:
    """Modules a task creates new and trains (so a checkpoint need not have them)."""
    return SEQ_CLS_HEAD_NAMES if task == TASK_SEQUENCE_CLASSIFICATION else ()


def unsupported_reason(task: str, missing: Sequence[str]) -> str | None:
    """Why `task` cannot train on a checkpoint lacking the weights `missing` (None: it can)."""
    heads = fresh_heads(task)
    lacking = [n for n in missing if not any(n == h or n.startswith(f"{h}.") for h in heads)]
    if not lacking:
        return None
    shown = ", ".join(lacking[:4]) + (f" and {len(lacking) - 4} more" if len(lacking) > 4 else "")
    needs = "an LM head" if task == TASK_CAUSAL_LM else "these weights"
    return (
        f"the checkpoint has no weights for {shown}: {task} would train on top of randomly "
        f"initialised ones and learn nothing useful; use a checkpoint that has {needs}"
    )


def task_layers(capabilities: dict[str, Any], task: str) -> dict[str, list[int]] | None:
    """The targetable layers of `task`'s model class, or None when it cannot train `task`."""
    entry = capabilities.get("tasks", {}).get(task)
    return None if entry is None else entry["layers"]


def job_problems(
    capabilities: dict[str, Any] | None,
    *,
    task: str,
    target_modules: list[str] | str,
    max_seq_len: int,
    projection_dims: tuple[int, int] | None,
    layers: dict[str, list[int]] | None = None,
) -> list[dict[str, str]]:
    """Every way a job does not fit the model, as {"field", "message"} (empty: it fits).

    `layers` is used for models registered before capabilities were recorded.
    """
    if capabilities is not None:
        layers = task_layers(capabilities, task)
        if layers is None:
            reason = capabilities.get("unsupported", {}).get(task) or (
                "it was registered without this task; register it again"
            )
            return [{"field": "base_model_id", "message": f"cannot train {task}: {reason}"}]
    problems = []
    limit = (capabilities or {}).get("max_positions")
    if limit and max_seq_len > limit:
        problems.append(
            {
                "field": "hyperparameters.max_seq_len",
                "message": f"is {max_seq_len}, above the {limit} positions this model has; "
                f"use at most {limit}",
            }
        )
    matched = VeraConfig(target_modules=target_modules, task=task).select(layers or {})
    if not matched:
        leaves = sorted({path.rsplit(".", 1)[-1] for path in layers or {}})
        problems.append(
            {
                "field": "target_modules",
                "message": f"{target_modules!r} matches no layer of this model for {task} "
                f"(its layers end in: {', '.join(leaves[:20])})",
            }
        )
    elif projection_dims is not None and max_dims(matched) != tuple(projection_dims):
        needed = max_dims(matched)
        problems.append(
            {
                "field": "projection_id",
                "message": f"these targets need a projection of max_d_in={needed[0]}, "
                f"max_d_out={needed[1]}; this one is {projection_dims[0]}×{projection_dims[1]}",
            }
        )
    return problems
