"""A LoRA linear layer (lesson: parameter-efficient fine-tuning): the reference."""

import torch
from torch import Tensor


def lora_linear(x: Tensor, weight: Tensor, bias: Tensor | None, A: Tensor, B: Tensor, alpha: float) -> Tensor:
    """h = x W₀ᵀ + b + (α / r) · x Aᵀ Bᵀ (see the starter for the shapes)."""
    r = A.shape[0]
    h = x @ weight.T  # (..., out)
    if bias is not None:
        h = h + bias
    return h + (alpha / r) * ((x @ A.T) @ B.T)  # (..., r) first, then (..., out)


def merge_lora(weight: Tensor, A: Tensor, B: Tensor, alpha: float) -> Tensor:
    """W = W₀ + (α / r) · B A, (out, in)."""
    return weight + (alpha / A.shape[0]) * (B @ A)
