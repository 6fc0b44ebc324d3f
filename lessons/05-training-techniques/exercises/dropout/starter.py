"""Inverted dropout (lesson: training techniques; Srivastava et al. 2014)."""

import torch
from torch import Tensor


def dropout(x: Tensor, p: float, training: bool, generator: torch.Generator) -> Tensor:
    """Inverted dropout of x, any shape.

    training:   keep = (u ≥ p) with u ~ Uniform[0, 1) drawn with
                torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                out  = x · keep / (1 − p)          (each value zeroed with probability p)
    evaluation: out = x                             (inverted dropout scales while training)
    p = 0 keeps everything; 0 ≤ p < 1.

    Returns out of x's shape and dtype.
    """
    raise NotImplementedError  # your code here
