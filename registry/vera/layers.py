"""VeRA linear layers: one trained adapter, or a bank of many users' vectors per batch.

    h = W0 x + Λb B Λd A x          (paper eq. 1; A, B shared and frozen)

Every adapted layer holds a reference to one `SharedProjection` (A, B) and slices it,
`A[:, :d_in]` and `B[:d_out, :]`, as PEFT does.

Precision: the adapter path always runs in float32 — the input is cast to float32, A, B
and the vectors are float32 — and its output is added to the base output before casting
back to the base dtype. That is what PEFT does when its adapter weights are float32 on a
bf16/fp16 base (`autocast_adapter_dtype`, `_cast_input_dtype`), and it keeps tiny λ
updates from vanishing in bf16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .hashing import linear_shape


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float32 for half inputs (see module docstring); float64 stays float64 (tests)."""
    return torch.promote_types(x.dtype, torch.float32)


class SharedProjection(nn.Module):
    """A and B of one model, the per-forward `A x` cache and the bank's row→slot index."""

    def __init__(self, vera_a: torch.Tensor, vera_b: torch.Tensor, seed: int, fingerprint: str):
        super().__init__()
        if vera_a.shape[0] != vera_b.shape[1]:
            raise ValueError(f"A {tuple(vera_a.shape)} and B {tuple(vera_b.shape)} differ in r")
        # Not persistent: A and B are regenerated from the seed, never saved.
        self.register_buffer("vera_A", vera_a.float(), persistent=False)
        self.register_buffer("vera_B", vera_b.float(), persistent=False)
        self.seed = seed
        self.fingerprint = fingerprint
        self.share_input_projection = True
        self.row_slots: torch.Tensor | None = None
        # Packed training: the batch is K members' consecutive row blocks of these sizes
        # (per-block path), or None with `row_slots` giving each row's member (gather).
        self.row_counts: list[int] | None = None
        self._input_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def r(self) -> int:
        return self.vera_A.shape[0]

    def _apply(self, fn, recurse=True):
        # `model.to(torch.bfloat16)` may move A and B but must not round them: take only
        # the device the conversion would pick.
        device = fn(torch.empty(0, device=self.vera_A.device)).device
        self.vera_A = self.vera_A.to(device)
        self.vera_B = self.vera_B.to(device)
        return self

    def clear_cache(self) -> None:
        self._input_cache.clear()

    def project_in(self, x: torch.Tensor, d_in: int, dropout: nn.Module) -> torch.Tensor:
        """`dropout(x) A[:, :d_in]^T` in float32, computed once per input tensor and forward.

        q, k and v read the same tensor: the cache returns the same autograd node to each,
        so autograd sums their gradients before the single backward matmul through A.
        The key holds the input itself (its id cannot be reused while cached) and its
        version counter (an in-place change invalidates the entry). With active dropout
        every layer draws its own mask, as PEFT does, so nothing is shared.
        """
        dtype = compute_dtype(x)
        vera_a = self.vera_A[:, :d_in].to(dtype)
        dropout_active = isinstance(dropout, nn.Dropout) and dropout.training and dropout.p > 0
        if dropout_active or not self.share_input_projection:
            return F.linear(dropout(x.to(dtype)), vera_a)
        # Inference tensors keep no version counter (and nothing edits hidden states in
        # place between q, k and v within one forward).
        version = 0 if x.is_inference() else x._version
        key = (id(x), version, d_in, torch.is_grad_enabled())
        cached = self._input_cache.get(key)
        if cached is not None and cached[0] is x:
            return cached[1]
        projected = F.linear(x.to(dtype), vera_a)
        self._input_cache[key] = (x, projected)
        return projected


def factored_flops(tokens: int, d_in: int, d_out: int, r: int, sharing: int, train: bool) -> int:
    """Extra FLOPs over the base layer of `((x Aᵀ) ∘ λd) Bᵀ ∘ λb`, forward (+ backward).

    `sharing` layers read the same input, so `x Aᵀ` and the gradient through A are
    counted once for all of them. Elementwise work is ignored (it is memory-bound and
    the same in both forms).
    """
    forward = 2 * tokens * r * (d_in / sharing + d_out)
    # Backward: dL/d(x Aᵀ ∘ λd) = (g ∘ λb) B, then dL/dx through A (shared as above).
    backward = 2 * tokens * r * (d_out + d_in / sharing) if train else 0
    return int(forward + backward)


def dense_flops(tokens: int, d_in: int, d_out: int, r: int, train: bool) -> int:
    """Extra FLOPs of forming ΔW = (λb∘B)(λd∘A) and running `x (W0 + ΔW)ᵀ` instead of `x W0ᵀ`.

    The base matmul and dL/dx = g (W0 + ΔW) cost what the base costs anyway; the extra is
    forming ΔW and, when training, dL/dΔW = gᵀ x plus its two products back to λb and λd.
    """
    form = 2 * d_out * r * d_in
    backward = (2 * tokens * d_in * d_out + 4 * d_out * r * d_in) if train else 0
    return form + backward


class VeraLinear(nn.Module):
    """A frozen linear layer plus VeRA: trained λd (r) and λb (d_out), or a bank of users."""

    def __init__(
        self,
        base_layer: nn.Module,
        projection: SharedProjection,
        d_initial: float = 0.1,
        dropout: float = 0.0,
    ):
        super().__init__()
        shape = linear_shape(base_layer)
        if shape is None:
            raise TypeError(f"VeRA adapts nn.Linear or Conv1D layers, not {type(base_layer)}")
        self.d_in, self.d_out = shape
        max_d_out, r = projection.vera_B.shape
        if projection.vera_A.shape[1] < self.d_in or max_d_out < self.d_out:
            raise ValueError(
                f"layer (d_in={self.d_in}, d_out={self.d_out}) does not fit the shared "
                f"A {tuple(projection.vera_A.shape)} / B {tuple(projection.vera_B.shape)}"
            )
        self.base_layer = base_layer
        self.fan_in_fan_out = not isinstance(base_layer, nn.Linear)
        self.r = r
        # Stored outside the module tree: every layer shares one projection module.
        object.__setattr__(self, "projection", projection)
        device = base_layer.weight.device
        # λb = 0 makes the adapted model start exactly at the base (paper §3.2).
        self.vera_lambda_d = nn.Parameter(torch.full((r,), float(d_initial), device=device))
        self.vera_lambda_b = nn.Parameter(torch.zeros(self.d_out, device=device))
        self.vera_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.register_buffer("bank_lambda_d", torch.zeros(0, r, device=device), persistent=False)
        self.register_buffer(
            "bank_lambda_b", torch.zeros(0, self.d_out, device=device), persistent=False
        )
        # Packed training: each member's own trainable (λd, λb), in `row_counts` order.
        self.member_lambdas: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.merged = False
        self.adapter_enabled = True
        self.input_sharing = 1  # layers of the same block reading the same input
        self.compute_path = "auto"  # "auto" | "factored" | "dense"

    def _apply(self, fn, recurse=True):
        # The base layer converts as asked; the λ vectors and the bank follow the device
        # but never drop below float32 (`model.to(torch.bfloat16)` would round tiny λ
        # updates away). float64 is kept for exact tests.
        if recurse:
            for child in self.children():
                child._apply(fn)
        converted = fn(torch.empty(0, device=self.vera_lambda_d.device))
        dtype = torch.promote_types(converted.dtype, torch.float32)
        return super()._apply(lambda t: t.to(converted.device, dtype), recurse=False)

    def _sliced(self, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            self.projection.vera_A[:, : self.d_in].to(dtype),
            self.projection.vera_B[: self.d_out, :].to(dtype),
        )

    def delta_weight(
        self,
        dtype: torch.dtype = torch.float32,
        lambdas: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """ΔW = (λb∘B)(λd∘A) in float32 (or `dtype`), shaped like the base weight; of this
        layer's own vectors, or of `lambdas` = (λd, λb) (a pack member's)."""
        vera_a, vera_b = self._sliced(dtype)
        own_d, own_b = lambdas or (self.vera_lambda_d, self.vera_lambda_b)
        lambda_d = own_d.to(dtype).unsqueeze(-1)
        lambda_b = own_b.to(dtype).unsqueeze(-1)
        delta = (lambda_b * vera_b) @ (lambda_d * vera_a)
        return delta.T if self.fan_in_fan_out else delta

    def merge(self) -> None:
        """Fold ΔW into the base weight (inference only; λ edits are ignored until unmerge)."""
        if self.merged:
            return
        with torch.no_grad():
            weight = self.base_layer.weight
            # The sum is formed in float32, then rounded once to the base dtype.
            weight.copy_((weight.float() + self.delta_weight()).to(weight.dtype))
        self.merged = True

    def unmerge(self) -> None:
        if not self.merged:
            return
        with torch.no_grad():
            weight = self.base_layer.weight
            weight.copy_((weight.float() - self.delta_weight()).to(weight.dtype))
        self.merged = False

    def _choose_dense(
        self, x: torch.Tensor, tokens: int | None = None, train: bool | None = None
    ) -> bool:
        """Whether `x (W0 + ΔW)ᵀ` costs fewer FLOPs than the factored path for `tokens`
        (all of x's by default) rows, trained (λ needing gradients) or not."""
        if self.compute_path != "auto":
            return self.compute_path == "dense"
        base = self.base_layer
        eligible = (
            not self.fan_in_fan_out
            and base.weight.dtype == x.dtype
            and x.dtype in (torch.float32, torch.float64)
            and not (isinstance(self.vera_dropout, nn.Dropout) and self.training)
        )
        if not eligible:
            return False
        if tokens is None:
            tokens = x.numel() // self.d_in
        if train is None:
            train = torch.is_grad_enabled() and self.vera_lambda_d.requires_grad
        factored = factored_flops(tokens, self.d_in, self.d_out, self.r, self.input_sharing, train)
        return dense_flops(tokens, self.d_in, self.d_out, self.r, train) < factored

    def _forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        # One matmul with W0 + ΔW: cheaper than the factored path when r is large
        # relative to d (see dense_flops); float32 bases only, so no rounding differs.
        weight = self.base_layer.weight + self.delta_weight(x.dtype)
        return F.linear(x, weight, self.base_layer.bias)

    def _forward_factored(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        projected = self.projection.project_in(x, self.d_in, self.vera_dropout)
        _, vera_b = self._sliced(projected.dtype)
        # PEFT's order of operations: λb ∘ (B (λd ∘ (A x))).
        delta = self.vera_lambda_b * F.linear(self.vera_lambda_d * projected, vera_b)
        return (result + delta).to(result.dtype)

    def _forward_bank(
        self,
        x: torch.Tensor,
        slots: torch.Tensor,
        bank: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Row i scaled by the vectors in row `slots[i]` of the bank (λd rows, λb rows):
        the layer's bank buffers (inference), or `bank` (a pack's stacked members)."""
        if slots.shape[0] != x.shape[0]:
            raise ValueError(
                f"bank row index has {slots.shape[0]} entries but the batch has {x.shape[0]} rows"
            )
        result = self.base_layer(x)
        projected = self.projection.project_in(x, self.d_in, self.vera_dropout)
        _, vera_b = self._sliced(projected.dtype)
        # Per-row vectors broadcast over the sequence axes; A x and B(·) are batch-wide.
        view = (x.shape[0],) + (1,) * (x.dim() - 2)
        bank_d, bank_b = bank or (self.bank_lambda_d, self.bank_lambda_b)
        lambda_d = bank_d[slots].view(*view, self.r)
        lambda_b = bank_b[slots].view(*view, self.d_out)
        delta = lambda_b * F.linear(lambda_d * projected, vera_b)
        return (result + delta).to(result.dtype)

    def _forward_members(self, x: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """Training a pack: each member's block of rows runs with that member's own λ
        tensors (autograd routes each block's gradient to its member), on the path
        `train()` would take for a batch that size (dense or factored, same FLOPs rule).

        Per block rather than a per-row gather: a member's λ gradients are reduced over
        its own rows exactly as the single-user path reduces them, so a pack of one is
        bit-identical to `train()`. A x is computed once for all factored rows.
        """
        if sum(counts) != x.shape[0]:
            raise ValueError(f"member row counts {counts} do not add up to {x.shape[0]} rows")
        per_row = x[:1].numel() // self.d_in
        train = torch.is_grad_enabled() and any(
            lambda_d.requires_grad for lambda_d, _ in self.member_lambdas
        )
        dense = [self._choose_dense(x, count * per_row, train) for count in counts]
        if not any(dense):
            return self._forward_member_blocks(x, counts)
        # Mixed (some member's batch is large enough for the dense path): block by block.
        outputs = []
        for lambdas, block, use_dense in zip(
            self.member_lambdas, torch.split(x, counts), dense, strict=True
        ):
            if use_dense:
                weight = self.base_layer.weight + self.delta_weight(x.dtype, lambdas)
                outputs.append(F.linear(block, weight, self.base_layer.bias))
            else:
                outputs.append(self._forward_member_blocks(block, [block.shape[0]], [lambdas]))
        return torch.cat(outputs)

    def _forward_member_blocks(
        self,
        x: torch.Tensor,
        counts: list[int],
        member_lambdas: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """The factored path, each block of rows scaled by its own member's λd and λb; the
        base, `A x` and `B (·)` run once over all rows. torch.split rather than x[a:b]:
        the backward of K slices would write K full-size gradients, split's is one cat."""
        member_lambdas = member_lambdas or self.member_lambdas
        result = self.base_layer(x)
        projected = self.projection.project_in(x, self.d_in, self.vera_dropout)
        _, vera_b = self._sliced(projected.dtype)
        if len(counts) == 1:  # exactly _forward_factored's operations
            ((lambda_d, lambda_b),) = member_lambdas
            delta = lambda_b * F.linear(lambda_d * projected, vera_b)
            return (result + delta).to(result.dtype)
        scaled = torch.cat(
            [
                lambda_d * rows
                for (lambda_d, _), rows in zip(
                    member_lambdas, torch.split(projected, counts), strict=True
                )
            ]
        )
        products = torch.split(F.linear(scaled, vera_b), counts)
        delta = torch.cat(
            [lambda_b * rows for (_, lambda_b), rows in zip(member_lambdas, products, strict=True)]
        )
        return (result + delta).to(result.dtype)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.merged or not self.adapter_enabled:
            return self.base_layer(x, *args, **kwargs)
        if self.member_lambdas is not None:  # training a pack
            counts = self.projection.row_counts
            if counts is not None:
                return self._forward_members(x, counts)
            # Gathered per row: a few kernels whatever the member count (GPU), the
            # gradients reduced in another order than train()'s (equal within rounding).
            stacked = (
                torch.stack([lambda_d for lambda_d, _ in self.member_lambdas]),
                torch.stack([lambda_b for _, lambda_b in self.member_lambdas]),
            )
            return self._forward_bank(x, self.projection.row_slots, stacked)
        slots = self.projection.row_slots
        if slots is not None:
            return self._forward_bank(x, slots)
        if self._choose_dense(x):
            return self._forward_dense(x)
        return self._forward_factored(x)

    def extra_repr(self) -> str:
        return f"d_in={self.d_in}, d_out={self.d_out}, r={self.r}, merged={self.merged}"
