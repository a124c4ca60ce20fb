"""A and B are bit-identical to PEFT's vera_A / vera_B; the fingerprint catches drift."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from registry.vera.projection import (
    ProjectionMismatch,
    fingerprint,
    generate_projection,
    regenerate_checked,
)


class TwoLayers(nn.Module):
    def __init__(self, first: tuple[int, int], second: tuple[int, int]):
        super().__init__()
        self.first = nn.Linear(*first)
        self.second = nn.Linear(*second)

    def forward(self, x):
        return self.second(self.first(x))


def peft_buffers(seed: int, r: int, first, second) -> tuple[torch.Tensor, torch.Tensor]:
    from peft import VeraConfig, get_peft_model

    config = VeraConfig(
        r=r, target_modules=["first", "second"], projection_prng_key=seed, save_projection=False
    )
    model = get_peft_model(TwoLayers(first, second), config)
    return model.base_model.vera_A["default"], model.base_model.vera_B["default"]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    ("seed", "r", "first", "second"),
    [
        (0, 4, (16, 24), (24, 16)),
        (1234, 32, (48, 20), (20, 7)),
        (2**31 + 5, 256, (64, 96), (96, 64)),
        (7, 1, (3, 5), (5, 3)),
    ],
)
def test_projection_is_bit_identical_to_peft(seed, r, first, second) -> None:
    peft_a, peft_b = peft_buffers(seed, r, first, second)
    max_d_in = max(first[0], second[0])
    max_d_out = max(first[1], second[1])
    ours_a, ours_b = generate_projection(seed, r, max_d_in, max_d_out)
    assert ours_a.dtype == ours_b.dtype == torch.float32
    assert torch.equal(ours_a, peft_a)
    assert torch.equal(ours_b, peft_b)
    assert fingerprint(ours_a, ours_b) == fingerprint(peft_a, peft_b)


def test_fingerprint_is_sha256_of_a_then_b_bytes() -> None:
    import hashlib

    vera_a, vera_b = generate_projection(3, 8, 10, 12)
    expected = hashlib.sha256(vera_a.numpy().tobytes() + vera_b.numpy().tobytes()).hexdigest()
    assert fingerprint(vera_a, vera_b) == f"sha256:{expected}"
    # Non-contiguous views hash by their values, not their memory layout.
    assert fingerprint(vera_a.T.contiguous().T, vera_b) == fingerprint(vera_a, vera_b)


def test_fingerprint_depends_on_seed_rank_and_size() -> None:
    base = fingerprint(*generate_projection(0, 8, 10, 12))
    assert fingerprint(*generate_projection(1, 8, 10, 12)) != base
    assert fingerprint(*generate_projection(0, 9, 10, 12)) != base
    assert fingerprint(*generate_projection(0, 8, 11, 12)) != base


def test_regenerate_checked() -> None:
    vera_a, vera_b = generate_projection(5, 8, 10, 12)
    good = fingerprint(vera_a, vera_b)
    again_a, again_b = regenerate_checked(5, 8, 10, 12, good)
    assert torch.equal(again_a, vera_a) and torch.equal(again_b, vera_b)
    with pytest.raises(ProjectionMismatch) as caught:
        regenerate_checked(6, 8, 10, 12, good)
    message = str(caught.value)
    assert good in message and torch.__version__ in message and "seed=6" in message


def test_bad_sizes_are_named() -> None:
    with pytest.raises(ValueError, match="r=0"):
        generate_projection(0, 0, 10, 12)
