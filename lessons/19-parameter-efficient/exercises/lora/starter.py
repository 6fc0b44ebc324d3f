"""A LoRA linear layer (lesson: parameter-efficient fine-tuning)."""

import torch
from torch import Tensor


def lora_linear(x: Tensor, weight: Tensor, bias: Tensor | None, A: Tensor, B: Tensor, alpha: float) -> Tensor:
    """The output of a linear layer with a frozen weight and a trainable low-rank update.

    x:      (..., in)   inputs, any number of leading dimensions (batch, tokens)
    weight: (out, in)   W₀, the frozen pretrained weight (nn.Linear's layout: out × in)
    bias:   (out,) or None, b, frozen
    A:      (r, in)     the down projection, r = A.shape[0] the rank
    B:      (out, r)    the up projection (zeros at the start of training)
    alpha:  α; the update is scaled by α / r

    h = W₀ x + b + (α / r) · B (A x)     for each row x, i.e. for the whole batch
      = x W₀ᵀ + b + (α / r) · x Aᵀ Bᵀ

    Returns h, (..., out). Multiply A first: x Aᵀ is only r numbers per row, and B A (out × in)
    need never be formed.
    """
    raise NotImplementedError  # your code here


def merge_lora(weight: Tensor, A: Tensor, B: Tensor, alpha: float) -> Tensor:
    """The one weight matrix that computes what the LoRA layer does: W = W₀ + (α / r) · B A.

    weight: (out, in), A: (r, in), B: (out, r). Returns W, (out, in); the bias is unchanged.
    """
    raise NotImplementedError  # your code here
