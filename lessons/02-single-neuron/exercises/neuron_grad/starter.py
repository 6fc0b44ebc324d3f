"""A single neuron's loss and gradient with weight decay (lesson: single neuron)."""

import torch
import torch.nn.functional as F
from torch import Tensor


def neuron_loss_and_grad(w: Tensor, b: Tensor, X: Tensor, y: Tensor, alpha: float) -> tuple[Tensor, Tensor, Tensor]:
    """Mean binary cross-entropy of p = σ(X w + b) plus (α/2)·‖w‖², and its gradient.

    w: (F,) weights    b: () bias    X: (N, F) features φ(x), one row per point
    y: (N,) labels 0 or 1 (any dtype; use them as numbers)    alpha: weight decay α ≥ 0

    z = X w + b                                                   (N,)
    L = −(1/N) Σ_i [ y_i log σ(z_i) + (1 − y_i) log(1 − σ(z_i)) ] + (α/2)·‖w‖²
        with log σ(z) = −softplus(−z) and log(1 − σ(z)) = −softplus(z)
    ∂L/∂w = (1/N) Xᵀ (σ(z) − y) + α·w                              (F,)
    ∂L/∂b = (1/N) Σ_i (σ(z_i) − y_i)     (the bias is not decayed)  ()

    Returns (loss, dw, db) in w's dtype: a 0-d loss, dw of shape (F,), db 0-d.
    """
    raise NotImplementedError  # your code here
