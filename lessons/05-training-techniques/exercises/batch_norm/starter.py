"""Batch normalisation forward and backward (lesson: training techniques; Ioffe & Szegedy 2015)."""

from typing import Any

import torch
from torch import Tensor


def batch_norm_forward(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Tensor, running_var: Tensor,
                       training: bool, momentum: float = 0.1, eps: float = 1e-5) -> tuple[Tensor, Any]:
    """y = γ · (x − μ) / sqrt(σ² + ε) + β per channel c, and a cache for the backward pass.

    x: (N, C, H, W)    gamma, beta, running_mean, running_var: (C,)
    M = N·H·W values per channel.

    training:  μ_c = mean of x[:, c] over (n, h, w),  σ²_c = mean of (x[:, c] − μ_c)²  (biased)
               running_mean ← (1 − momentum)·running_mean + momentum·μ            (in place)
               running_var  ← (1 − momentum)·running_var  + momentum·σ²·M/(M − 1)  (in place: unbiased)
    evaluation: μ = running_mean, σ² = running_var, and the running averages stay as they are.
    x̂ = (x − μ) / sqrt(σ² + ε),  y = γ·x̂ + β      (broadcast (C,) as (1, C, 1, 1))

    Returns (y, cache): y of x's shape; cache: whatever batch_norm_backward needs (a tuple, a dict).
    """
    raise NotImplementedError  # your code here


def batch_norm_backward(dout: Tensor, cache: Any) -> tuple[Tensor, Tensor, Tensor]:
    """∂L/∂x, ∂L/∂γ, ∂L/∂β from ∂L/∂y = dout (N, C, H, W), in the mode of the forward pass.

    Sums Σ run over (n, h, w), per channel; σ̂ = sqrt(σ² + ε).
    ∂L/∂β = Σ dout          ∂L/∂γ = Σ dout ⊙ x̂                            (C,) each
    training:   ∂L/∂x = γ/(M·σ̂) · (M·dout − Σ dout − x̂ · Σ(dout ⊙ x̂))   (μ and σ² depend on x)
    evaluation: ∂L/∂x = dout · γ/σ̂                                     (μ and σ² are constants)

    Returns (dx, dgamma, dbeta): dx of x's shape, dgamma and dbeta of shape (C,).
    """
    raise NotImplementedError  # your code here
