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
    """The A/B an adapter was made with are not the ones regenerated here.

    `cause` names why: "shape" (other r or dims: other targets or model), "draw" (another
    seed, or a torch build whose generator draws other numbers), "corrupted", or
    "fingerprint" (only a hash to compare: see the message for the candidates).
    """

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


# Half dtypes a checkpoint's A/B may have been rounded through (a bf16 base in PEFT).
_ROUNDINGS = (torch.bfloat16, torch.float16)


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


def _roundings(ours: torch.Tensor, stored: torch.Tensor) -> list[torch.Tensor]:
    """Ours as `stored` would hold it after each rounding it may have gone through."""
    ours = ours.detach().to("cpu", torch.float32)
    dtypes = dict.fromkeys((stored.dtype, torch.float32, *_ROUNDINGS))
    return [ours.to(dtype).to(stored.dtype) for dtype in dtypes]


def regenerate_checked(
    seed: int, r: int, max_d_in: int, max_d_out: int, expected_fingerprint: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Regenerate A and B and refuse them if their fingerprint is not the recorded one."""
    vera_a, vera_b = generate_projection(seed, r, max_d_in, max_d_out)
    got = fingerprint(vera_a, vera_b)
    if got == expected_fingerprint:
        return vera_a, vera_b
    params = f"projection (seed={seed}, r={r}, max_d_in={max_d_in}, max_d_out={max_d_out})"
    rounded = {
        fingerprint(vera_a.to(dtype), vera_b.to(dtype)): str(dtype).removeprefix("torch.")
        for dtype in _ROUNDINGS
    }
    if expected_fingerprint in rounded:
        cause, why = (
            "rounding",
            f"the recorded fingerprint is of these matrices rounded to "
            f"{rounded[expected_fingerprint]}; record the float32 one",
        )
    else:
        cause, why = (
            "fingerprint",
            "either the torch build that recorded it draws other numbers than this one "
            "(compare the projection's torch_version), or the record is of other parameters "
            "(seed, r, dims) or corrupted",
        )
    raise ProjectionMismatch(
        f"{params} regenerated with torch {torch.__version__} has fingerprint {got}, the record "
        f"says {expected_fingerprint}: {why}. Adapters made against the recorded matrices "
        "would give wrong outputs here",
        cause,
    )


def check_stored(
    stored: tuple[torch.Tensor, torch.Tensor], ours: tuple[torch.Tensor, torch.Tensor], seed: int
) -> None:
    """Accept a checkpoint's stored A/B (PEFT's save_projection=True) if they are ours,
    exactly or as rounded through their own dtype, bf16 or fp16; else say why not."""
    for name, theirs, mine in zip("AB", stored, ours, strict=True):
        if tuple(theirs.shape) != tuple(mine.shape):
            raise ProjectionMismatch(
                f"the stored {name} is {tuple(theirs.shape)}, its config's r and targets on "
                f"this model need {tuple(mine.shape)}: it was saved for another model or "
                "other targets",
                "shape",
            )
        candidates = _roundings(mine, theirs)
        if any(torch.equal(candidate, theirs) for candidate in candidates):
            continue
        same = max(float((candidate == theirs).float().mean()) for candidate in candidates)
        bound = math.sqrt(6.0 / theirs.shape[1])  # kaiming-uniform with gain √2
        if same >= 0.5:
            cause, why = "corrupted", f"{1 - same:.1%} of its values differ: it is corrupted"
        elif bool((theirs.float().abs() > bound * 1.01).any()):  # 1 %: bf16 rounding
            cause, why = (
                "corrupted",
                f"values beyond ±{bound:.4g} are no kaiming-uniform draw: it is corrupted or "
                "was initialised otherwise",
            )
        else:
            cause, why = (
                "draw",
                f"it is another random draw: made with a seed other than "
                f"projection_prng_key={seed}, or by a torch build whose CPU generator draws "
                f"other numbers than torch {torch.__version__}",
            )
        raise ProjectionMismatch(
            f"the stored {name} {tuple(theirs.shape)} is not the regenerated one: {why}", cause
        )
