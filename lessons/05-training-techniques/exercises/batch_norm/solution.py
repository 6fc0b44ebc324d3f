"""Batch normalisation forward and backward: the reference solution."""

from typing import Any

import torch
from torch import Tensor


def batch_norm_forward(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Tensor, running_var: Tensor,
                       training: bool, momentum: float = 0.1, eps: float = 1e-5) -> tuple[Tensor, Any]:
    """y = γ·x̂ + β with batch statistics (training, running ones updated) or running ones."""
    m = x.numel() // x.shape[1]  # N·H·W
    if training:
        mean = x.mean(dim=(0, 2, 3))  # (C,)
        var = x.var(dim=(0, 2, 3), unbiased=False)  # (C,)
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * m / max(m - 1, 1))
    else:
        mean, var = running_mean.clone(), running_var.clone()  # (C,) each
    inv_std = 1 / torch.sqrt(var + eps)  # (C,)
    x_hat = (x - mean[None, :, None, None]) * inv_std[None, :, None, None]  # (N, C, H, W)
    y = gamma[None, :, None, None] * x_hat + beta[None, :, None, None]
    return y, (x_hat, gamma, inv_std, training, m)


def batch_norm_backward(dout: Tensor, cache: Any) -> tuple[Tensor, Tensor, Tensor]:
    """dx by the chain rule through x̂ (and, in training, through μ and σ²)."""
    x_hat, gamma, inv_std, training, m = cache
    dbeta = dout.sum(dim=(0, 2, 3))  # (C,)
    dgamma = (dout * x_hat).sum(dim=(0, 2, 3))  # (C,)
    scale = (gamma * inv_std)[None, :, None, None]  # (1, C, 1, 1)
    if not training:
        return dout * scale, dgamma, dbeta
    dx = scale / m * (m * dout - dbeta[None, :, None, None] - x_hat * dgamma[None, :, None, None])
    return dx, dgamma, dbeta
