"""GPU smoke test and step timing for registry.vera (not a test; runs on CPU too).

Checks that the projection regenerated for a CUDA model has the CPU fingerprint, that a
tiny Llama trains under bf16 autocast with the loss falling, and times a BERT-sized
training step. Needs only torch, transformers and safetensors.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry.vera.config import VeraConfig
from registry.vera.inject import inject_vera, remove_vera
from registry.vera.projection import fingerprint, generate_projection
from registry.vera.train import TrainingArgs, train


def tiny_llama(device):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    return LlamaForCausalLM(config).to(device)


def bert(device):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        num_labels=2,
    )
    return BertForSequenceClassification(config).to(device)


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    cpu_a, cpu_b = generate_projection(7, 64, 96, 96)
    model = tiny_llama(device)
    inject_vera(
        model,
        VeraConfig(r=64, target_modules=["q_proj", "v_proj", "up_proj"], projection_prng_key=7),
    )
    report["projection_matches_cpu"] = model.vera_projection.fingerprint == fingerprint(
        cpu_a, cpu_b
    )
    remove_vera(model)
    corpus = [{"text": "abc " * 20}] * 32
    losses = []
    result = train(
        model,
        [{"input_ids": list(range(1, 40))} for _ in corpus],
        VeraConfig(r=64, target_modules=["q_proj", "v_proj"], task="causal-lm"),
        TrainingArgs(max_steps=40, batch_size=8, learning_rate=5e-2),
        progress=lambda p: losses.append(p.loss),
    )
    report["llama_loss_first_last"] = [losses[0], losses[-1]]
    report["llama_learns"] = losses[-1] < 0.5 * losses[0]
    model = bert(device)
    items = [{"input_ids": list(range(1000, 1128)), "label": i % 2} for i in range(32 * 6)]
    steps = []
    train(
        model,
        items,
        VeraConfig(
            r=256,
            target_modules=["query", "value"],
            task="sequence-classification",
            modules_to_save=["classifier"],
        ),
        TrainingArgs(max_steps=6, batch_size=32, max_length=128),
        progress=lambda p: steps.append(time.perf_counter()),
    )
    if device == "cuda":
        torch.cuda.synchronize()
    report["bert_step_ms_median"] = 1000 * sorted(b - a for a, b in itertools.pairwise(steps))[2]
    report["metrics"] = {k: v for k, v in result.metrics.items() if isinstance(v, float | int)}
    print(json.dumps(report, indent=2))
    if not (report["projection_matches_cpu"] and report["llama_learns"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
