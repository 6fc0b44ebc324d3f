"""DDPM's forward process and one reverse step: the reference solution."""

from torch import Tensor


def q_sample(x0: Tensor, t: Tensor, eps: Tensor, alpha_bars: Tensor) -> Tensor:
    """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε."""
    ab = alpha_bars[t].view(-1, 1, 1, 1)  # (B, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps  # (B, C, H, W)


def p_sample_step(x_t: Tensor, i: int, eps_pred: Tensor, betas: Tensor, alpha_bars: Tensor, z: Tensor) -> Tensor:
    """x_{t−1} = (x_t − β_t/√(1 − ᾱ_t) · ε_θ)/√α_t + √β_t z, without z at t = 1."""
    beta, ab = betas[i], alpha_bars[i]
    mean = (x_t - beta / (1 - ab).sqrt() * eps_pred) / (1 - beta).sqrt()  # (B, C, H, W)
    return mean + beta.sqrt() * z if i > 0 else mean
