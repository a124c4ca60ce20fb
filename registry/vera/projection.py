"""The shared random matrices A and B, regenerated from a seed exactly as PEFT does.

PEFT (`peft/tuners/vera/model.py`, `_init_vera_A_vera_B`) draws, from one CPU generator
seeded with `projection_prng_key`, first A (r × max_d_in) then B (max_d_out × r), each
kaiming-uniform with gain √2: bound = √3 · √2 / √fan_in, fan_in being the tensor's second
dimension. We do the same draws in the same order, in float32 on the CPU, so our A and B
are bit-identical to PEFT's `vera_A` / `vera_B` buffers.
"""

from __future__ import annotations

import hashlib
import math

import torch

# Names the generator in the registry's Projection row; bump it if the draw ever changes.
GENERATOR_ID = "torch-cpu-mt19937/kaiming-uniform-sqrt2/A-then-B/v1"


class ProjectionMismatch(RuntimeError):
    """The regenerated A/B do not have the fingerprint recorded for them."""


def _kaiming_uniform(shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    fan_in = shape[1]
    # Same float arithmetic as torch.nn.init / PEFT: std = gain / sqrt(fan), bound = sqrt(3) * std.
    std = math.sqrt(2) / math.sqrt(fan_in)
    bound = math.sqrt(3.0) * std
    tensor = torch.empty(shape, dtype=torch.float32)
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def generate_projection(
    seed: int, r: int, max_d_in: int, max_d_out: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A (r × max_d_in) and B (max_d_out × r), float32 on the CPU, as PEFT makes them."""
    if min(r, max_d_in, max_d_out) <= 0:
        raise ValueError(
            f"projection sizes must be positive, got r={r}, max_d_in={max_d_in}, "
            f"max_d_out={max_d_out}"
        )
    # Always the CPU generator: CUDA's Philox stream differs, and PEFT uses the CPU one.
    generator = torch.Generator(device="cpu").manual_seed(seed)
    vera_a = _kaiming_uniform((r, max_d_in), generator)  # drawn first
    vera_b = _kaiming_uniform((max_d_out, r), generator)  # then B, same generator
    return vera_a, vera_b


def fingerprint(vera_a: torch.Tensor, vera_b: torch.Tensor) -> str:
    """`sha256:<hex>` over A's then B's row-major (C-contiguous) float32 bytes.

    Shapes are not hashed separately: they are part of the Projection row
    (r, max_d_in, max_d_out) next to the fingerprint.
    """
    digest = hashlib.sha256()
    for tensor in (vera_a, vera_b):
        as_f32 = tensor.detach().to(device="cpu", dtype=torch.float32).contiguous()
        digest.update(as_f32.reshape(-1).view(torch.uint8).numpy())
    return "sha256:" + digest.hexdigest()


def regenerate_checked(
    seed: int, r: int, max_d_in: int, max_d_out: int, expected_fingerprint: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Regenerate A and B and refuse them if their fingerprint is not the recorded one."""
    vera_a, vera_b = generate_projection(seed, r, max_d_in, max_d_out)
    got = fingerprint(vera_a, vera_b)
    if got != expected_fingerprint:
        raise ProjectionMismatch(
            f"projection (seed={seed}, r={r}, max_d_in={max_d_in}, max_d_out={max_d_out}) "
            f"regenerated with torch {torch.__version__} has fingerprint {got}, expected "
            f"{expected_fingerprint}: this torch build draws different random numbers, so "
            "adapters trained against the recorded projection would give wrong outputs"
        )
    return vera_a, vera_b
