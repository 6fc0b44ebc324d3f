"""A single neuron's loss and gradient with weight decay: the reference solution."""

import torch
import torch.nn.functional as F
from torch import Tensor


def neuron_loss_and_grad(w: Tensor, b: Tensor, X: Tensor, y: Tensor, alpha: float) -> tuple[Tensor, Tensor, Tensor]:
    """BCE(σ(Xw + b), y) + (α/2)‖w‖² and its gradient (Xᵀ(σ(z) − y)/N + αw, mean(σ(z) − y))."""
    y = y.to(w.dtype)  # (N,)
    n = X.shape[0]
    z = X @ w + b  # (N,)
    loss = (y * F.softplus(-z) + (1 - y) * F.softplus(z)).mean() + 0.5 * alpha * (w * w).sum()  # ()
    err = torch.sigmoid(z) - y  # (N,)
    return loss, X.T @ err / n + alpha * w, err.sum() / n
