"""Batch normalisation written out by hand (Ioffe & Szegedy 2015, "Batch Normalization:
Accelerating Deep Network Training by Reducing Internal Covariate Shift").

For a batch of feature maps x of shape (N, C, H, W), each channel c is normalised with
the mean and variance of that channel over the batch and every position, then scaled
and shifted by two learned numbers:

    μ_c = mean over (n, h, w) of x[n, c, h, w]        σ²_c = mean of (x − μ_c)²
    x̂ = (x − μ_c) / sqrt(σ²_c + ε)                    y = γ_c · x̂ + β_c

In training mode μ and σ² come from the batch, and running averages are kept,
running ← (1 − momentum) · running + momentum · batch statistic (the variance kept
is the unbiased one, N·H·W / (N·H·W − 1) · σ²). In evaluation mode the running
averages replace the batch statistics, so one image's output no longer depends on
the other images in its batch. `ManualBatchNorm2d` has the same parameters and
buffers as `torch.nn.BatchNorm2d` (weight = γ, bias = β, running_mean, running_var,
num_batches_tracked), so state dicts move between the two.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def batch_norm_2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """y = γ · (x − μ) / sqrt(σ² + ε) + β per channel; in training, μ and σ² from the batch
    and the running statistics updated in place; in evaluation, the running ones."""
    if training:
        mean = x.mean(dim=(0, 2, 3))  # (C,) μ over the batch and every position
        var = x.var(dim=(0, 2, 3), unbiased=False)  # (C,) σ², biased: what normalises
        n = x.numel() // x.shape[1]  # N·H·W values per channel
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * n / max(n - 1, 1))  # unbiased, as PyTorch keeps it
    else:
        mean, var = running_mean, running_var  # (C,), (C,)
    x_hat = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + eps)  # (N, C, H, W)
    return weight[None, :, None, None] * x_hat + bias[None, :, None, None]  # (N, C, H, W)


class ManualBatchNorm2d(nn.Module):
    """nn.BatchNorm2d's behaviour (affine, tracking running statistics) in a few lines."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))  # γ
        self.bias = nn.Parameter(torch.zeros(num_features))  # β
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.num_batches_tracked += 1
        return batch_norm_2d(x, self.weight, self.bias, self.running_mean, self.running_var,
                             training=self.training, momentum=self.momentum, eps=self.eps)  # (N, C, H, W)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
