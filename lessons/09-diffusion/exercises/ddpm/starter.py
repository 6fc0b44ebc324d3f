"""DDPM's forward process and one reverse step (lesson: diffusion; Ho, Jain & Abbeel 2020)."""

import torch
from torch import Tensor


def q_sample(x0: Tensor, t: Tensor, eps: Tensor, alpha_bars: Tensor) -> Tensor:
    """A sample of q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I), one t per example.

    x0, eps: (B, C, H, W)    t: (B,) step indices in 0 … T−1 (index i stands for t = i + 1)
    alpha_bars: (T,) ᾱ_t = Π_{s ≤ t} (1 − β_s)

    x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε       (ᾱ_t of each example broadcast as (B, 1, 1, 1))

    Returns x_t of shape (B, C, H, W).
    """
    raise NotImplementedError  # your code here


def p_sample_step(x_t: Tensor, i: int, eps_pred: Tensor, betas: Tensor, alpha_bars: Tensor, z: Tensor) -> Tensor:
    """One step of Algorithm 2: x_{t−1} from x_t, for step index i (t = i + 1).

    x_t, eps_pred, z: (B, C, H, W)    (eps_pred = ε_θ(x_t, t); z ~ N(0, I) drawn by the caller)
    betas, alpha_bars: (T,)           α_t = 1 − β_t,  σ_t = √β_t

    x_{t−1} = 1/√α_t · (x_t − (1 − α_t)/√(1 − ᾱ_t) · ε_θ(x_t, t)) + σ_t · z
    and at t = 1 (index 0) no noise is added: x_0 is the mean alone.

    Returns x_{t−1} of shape (B, C, H, W).
    """
    raise NotImplementedError  # your code here
