"""Rank-one model editing (Meng et al. 2022, "Locating and Editing Factual Associations in
GPT", ROME), and the course's ViT with the hooks an edit needs.

A linear layer y = W k + b is read as a memory: each key k (its input) is stored with a value
W k (its output). To make it give a new value v* for one key k* and change as little else as
possible, ROME solves "keep W K ≈ W_old K for the keys K the layer usually sees, and map k* to
v* exactly" in closed form:

    Ŵ = W + (v* − W k*) (C⁻¹ k*)ᵀ / ((C⁻¹ k*)ᵀ k*),     C = E[k kᵀ] (+ λ I)

C is the keys' second moment (uncentred), estimated from many inputs; λ I keeps it invertible
when few keys are seen or some directions are never used. The naive rank-one update puts the
identity where C⁻¹ is,

    Ŵ = W + (v* − W k*) k*ᵀ / (k*ᵀ k*),

so both map k* to v* exactly; they differ in which keys they leave alone. A key k changes
its value by (v* − W k*) · uᵀk / uᵀk*, u = C⁻¹ k* (ROME) or k* (naive): ROME leaves every k
with kᵀ C⁻¹ k* = 0 unchanged, the naive one every k with kᵀ k* = 0. The keys of inputs like
the edited one (other images of its class) lie near k*, so kᵀk* / k*ᵀk* is large for them
and the naive update moves them nearly as far as k* itself; C⁻¹ shrinks the directions in
which keys commonly vary and weighs those particular to k*. ROME's Ŵ is the least-squares
answer: of all Ŵ with Ŵ k* = v*, the one with the least Σ_j ‖(Ŵ − W) k_j‖² over the keys C
was estimated from.

The functions take and return plain tensors and never modify their inputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.models.registry import register_model
from dlcourse_tui.models.vit import ViT


def second_moment(keys: Tensor, lam: float = 0.0) -> Tensor:
    """C = E[k kᵀ] + λ I from keys (N, d_in): (d_in, d_in), uncentred, in float64."""
    k = keys.double()  # (N, d_in)
    c = k.T @ k / k.shape[0]  # (d_in, d_in)
    return c + lam * torch.eye(k.shape[1], dtype=c.dtype, device=c.device)


def rank_one(W: Tensor, k: Tensor, v: Tensor, u: Tensor) -> Tensor:
    """W + (v − W k) uᵀ / (uᵀ k): the rank-one update along u that maps k to v exactly.
    W (d_out, d_in), k (d_in,), v (d_out,), u (d_in,) → (d_out, d_in)."""
    W64, k64, v64, u64 = W.double(), k.double(), v.double(), u.double()
    residual = v64 - W64 @ k64  # (d_out,) what k's value lacks
    denom = u64 @ k64  # () uᵀ k
    if not torch.isfinite(denom) or denom.abs() < 1e-12 * (u64.norm() * k64.norm()).clamp_min(1e-300):
        raise ValueError("the update direction u is orthogonal to the key k (uᵀk = 0): no rank-one edit along u "
                         "reaches k.")
    return (W64 + torch.outer(residual, u64) / denom).to(W.dtype)  # (d_out, d_in)


def rome_update(W: Tensor, k: Tensor, v: Tensor, C: Tensor) -> Tensor:
    """ROME's closed form: Ŵ = W + (v − W k)(C⁻¹k)ᵀ / ((C⁻¹k)ᵀ k). W (d_out, d_in), k (d_in,),
    v (d_out,) the value W should give k (the bias left out), C (d_in, d_in) → (d_out, d_in)."""
    u = torch.linalg.solve(C.double(), k.double())  # (d_in,) C⁻¹ k, without forming C⁻¹
    return rank_one(W, k, v, u)


def naive_update(W: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """The plain rank-one update Ŵ = W + (v − W k) kᵀ / (kᵀ k): (d_out, d_in)."""
    return rank_one(W, k, v, k)


def mean_kl(logits_before: Tensor, logits_after: Tensor) -> Tensor:
    """Mean over rows of KL(p_before ‖ p_after) of (N, classes) logits: () in nats."""
    log_p = F.log_softmax(logits_before.double(), dim=-1)  # (N, classes)
    log_q = F.log_softmax(logits_after.double(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()


@register_model("vit_edit", task="edit", inputs=("image",), example_shape=(3, 32, 32),
                description="the vision-transformer lesson's ViT, read and edited at one block's MLP (fc2) at [CLS]")
class EditableViT(ViT):
    """The course's ViT (same config and weights, so a vit run's checkpoint loads into it), with
    what an edit of block `layer`'s second MLP layer (fc2) needs: its key (fc2's input, the GELU
    output) and value (fc2's output) at the [CLS] token, and a forward pass with that value replaced."""

    def fc2(self, layer: int) -> nn.Linear:
        """The edited layer: block `layer`'s MLP output projection, weight (d, d_ff)."""
        return self.encoder.blocks[layer].mlp.fc2

    @torch.no_grad()
    def cls_keys(self, x: Tensor, layer: int) -> Tensor:
        """fc2's input at [CLS] for images x (B, C, H, W): keys (B, d_ff). The blocks after
        `layer` still run (a forward hook only reads)."""
        seen: list[Tensor] = []
        handle = self.fc2(layer).register_forward_pre_hook(lambda _m, args: seen.append(args[0][:, 0]))
        try:
            self(x)
        finally:
            handle.remove()
        return seen[0]  # (B, d_ff)

    @contextlib.contextmanager
    def cls_value(self, layer: int, v: Tensor) -> Iterator[None]:
        """Within the block, fc2's output at [CLS] is v (d,) for every image, the other tokens
        untouched: the network as it would be if fc2 gave v for this [CLS] key, gradient flowing to v."""

        def replace(_m: nn.Module, _args: tuple[Tensor, ...], out: Tensor) -> Tensor:
            return torch.cat([v.expand(out.shape[0], 1, -1), out[:, 1:]], dim=1)  # (B, T, d)

        handle = self.fc2(layer).register_forward_hook(replace)
        try:
            yield
        finally:
            handle.remove()
