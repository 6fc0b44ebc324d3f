"""Inverted dropout: the reference solution."""

import torch
from torch import Tensor


def dropout(x: Tensor, p: float, training: bool, generator: torch.Generator) -> Tensor:
    """x · 1[u ≥ p] / (1 − p) while training, x in evaluation."""
    if not training or p == 0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p  # same shape as x
    return x * keep / (1 - p)
