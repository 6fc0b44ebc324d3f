"""Backpropagation through a two-hidden-layer MLP: the reference solution."""

import torch
import torch.nn.functional as F
from torch import Tensor


def act(z: Tensor, activation: str) -> Tensor:
    return torch.relu(z) if activation == "relu" else torch.tanh(z)


def act_grad(z: Tensor, h: Tensor, activation: str) -> Tensor:
    """act′(z) from z and h = act(z)."""
    return (z > 0).to(z.dtype) if activation == "relu" else 1 - h * h


def mlp_backward(x: Tensor, y: Tensor, params: dict[str, Tensor], activation: str = "relu") -> dict[str, Tensor]:
    """The chain rule from the mean cross-entropy down to fc1."""
    W1, b1, W2, b2, W3, b3 = (params[k] for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                                  "fc3.weight", "fc3.bias"))
    n = x.shape[0]
    z1 = x @ W1.T + b1  # (N, H)
    h1 = act(z1, activation)
    z2 = h1 @ W2.T + b2  # (N, H)
    h2 = act(z2, activation)
    s = h2 @ W3.T + b3  # (N, C)
    d_s = (torch.softmax(s, dim=1) - F.one_hot(y, s.shape[1]).to(s.dtype)) / n  # (N, C)
    d_z2 = (d_s @ W3) * act_grad(z2, h2, activation)  # (N, H)
    d_z1 = (d_z2 @ W2) * act_grad(z1, h1, activation)  # (N, H)
    return {"fc1.weight": d_z1.T @ x, "fc1.bias": d_z1.sum(0), "fc2.weight": d_z2.T @ h1, "fc2.bias": d_z2.sum(0),
            "fc3.weight": d_s.T @ h2, "fc3.bias": d_s.sum(0)}
