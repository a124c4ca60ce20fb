"""VeRA configuration, with PEFT's field names and semantics (torch-free).

Paper: Kopiczko, Blankevoort, Asano, "VeRA: Vector-based Random Matrix Adaptation",
ICLR 2024, arXiv:2310.11454.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TASK_CAUSAL_LM = "causal-lm"
TASK_SEQUENCE_CLASSIFICATION = "sequence-classification"
TASKS = (TASK_CAUSAL_LM, TASK_SEQUENCE_CLASSIFICATION)

# Our task names against PEFT's `task_type` values in adapter_config.json.
PEFT_TASK_TYPES = {TASK_CAUSAL_LM: "CAUSAL_LM", TASK_SEQUENCE_CLASSIFICATION: "SEQ_CLS"}
# PEFT makes these heads trainable and saved for SEQ_CLS (`modules_to_save`); so do we.
SEQ_CLS_HEAD_NAMES = ("classifier", "score")


@dataclass
class VeraConfig:
    """What to adapt and how; `to_peft_dict()` is PEFT's adapter_config.json."""

    # Rank of the shared random matrices A (r × d_in) and B (d_out × r). VeRA wants far
    # higher r than LoRA since only r + d_out numbers per layer are trained (paper §3, Tab. 1).
    r: int = 256
    # A list of module-name suffixes ("query" matches "...attention.self.query"), or a
    # regex string matched against the whole module path (`re.fullmatch`), as in PEFT.
    target_modules: list[str] | str = field(default_factory=lambda: ["query", "value"])
    # Seed of the CPU generator that produces A then B (PEFT: `projection_prng_key`).
    projection_prng_key: int = 0
    # Dropout on the adapter input only; the base path never sees it.
    vera_dropout: float = 0.0
    # Initial value of every λd entry; λb starts at zero so the adapted model starts
    # equal to the base. Small values (≤ 0.1) train best (paper Tab. 6c).
    d_initial: float = 0.1
    # True for layers storing weights as (fan_in, fan_out), e.g. GPT-2's Conv1D.
    fan_in_fan_out: bool = False
    # PEFT's bias mode; only "none" is supported (biases stay frozen).
    bias: str = "none"
    # Extra modules trained and saved whole (PEFT semantics); None picks the
    # classification head for sequence classification.
    modules_to_save: list[str] | None = None
    task: str = TASK_CAUSAL_LM

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ValueError(f"r must be a positive integer, got r={self.r}")
        if not 0.0 <= self.vera_dropout < 1.0:
            raise ValueError(f"vera_dropout must be in [0, 1), got {self.vera_dropout}")
        if self.bias != "none":
            raise ValueError(f"only bias='none' is supported, got bias={self.bias!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if isinstance(self.target_modules, str):
            re.compile(self.target_modules)
        elif not self.target_modules:
            raise ValueError("target_modules is empty: nothing would be adapted")
        else:
            self.target_modules = sorted(set(self.target_modules))
        if self.modules_to_save is None and self.task == TASK_SEQUENCE_CLASSIFICATION:
            self.modules_to_save = list(SEQ_CLS_HEAD_NAMES)

    def matches(self, module_path: str) -> bool:
        """PEFT's target_modules rule for one module path."""
        if self.modules_to_save and any(
            re.match(rf"(^|.*\.){re.escape(name)}($|\..*)", module_path)
            for name in self.modules_to_save
        ):
            return False  # PEFT never adapts a module it trains whole
        return target_matches(self.target_modules, module_path)

    def select(self, layers: dict[str, Any]) -> dict[str, Any]:
        """The entries of {module path: dims} this config adapts (the one matching rule)."""
        return {path: dims for path, dims in layers.items() if path and self.matches(path)}

    def to_peft_dict(self, base_model_name_or_path: str | None = None) -> dict[str, Any]:
        """The adapter_config.json PEFT's `PeftModel.from_pretrained` reads."""
        return {
            "peft_type": "VERA",
            "task_type": PEFT_TASK_TYPES[self.task],
            "base_model_name_or_path": base_model_name_or_path,
            "r": self.r,
            "target_modules": self.target_modules,
            "projection_prng_key": self.projection_prng_key,
            # Never store A and B: they are regenerated and checked by fingerprint.
            "save_projection": False,
            "vera_dropout": self.vera_dropout,
            "d_initial": self.d_initial,
            "fan_in_fan_out": self.fan_in_fan_out,
            "bias": self.bias,
            "modules_to_save": self.modules_to_save,
            "init_weights": True,
            "layers_to_transform": None,
            "layers_pattern": None,
            "inference_mode": True,
            "revision": None,
        }

    @classmethod
    def from_peft_dict(cls, data: dict[str, Any]) -> VeraConfig:
        """Read a PEFT adapter_config.json (VERA only)."""
        if data.get("peft_type") != "VERA":
            raise ValueError(f"expected peft_type 'VERA', got {data.get('peft_type')!r}")
        if data.get("layers_to_transform") is not None:
            raise ValueError("layers_to_transform is not supported")
        tasks = {peft: ours for ours, peft in PEFT_TASK_TYPES.items()}
        task_type = data.get("task_type") or "CAUSAL_LM"
        if task_type not in tasks:
            raise ValueError(f"task_type {task_type!r} is not one of {sorted(tasks)}")
        return cls(
            r=int(data["r"]),
            target_modules=data["target_modules"],
            projection_prng_key=int(data.get("projection_prng_key", 0)),
            vera_dropout=float(data.get("vera_dropout", 0.0)),
            d_initial=float(data.get("d_initial", 0.1)),
            fan_in_fan_out=bool(data.get("fan_in_fan_out", False)),
            bias=data.get("bias", "none"),
            modules_to_save=data.get("modules_to_save"),
            task=tasks[task_type],
        )


def target_matches(target_modules: list[str] | str, module_path: str) -> bool:
    """PEFT: a regex is matched on the full path; names match the path or its last parts."""
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, module_path) is not None
    return module_path in target_modules or any(
        module_path.endswith(f".{name}") for name in target_modules
    )


def max_dims(layers: dict[str, Sequence[int]]) -> tuple[int, int]:
    """(max_d_in, max_d_out) over {path: (d_in, d_out)}: the size of the shared A and B."""
    if not layers:
        raise ValueError("no layers: the projection needs at least one adapted layer")
    return max(dims[0] for dims in layers.values()), max(dims[1] for dims in layers.values())
