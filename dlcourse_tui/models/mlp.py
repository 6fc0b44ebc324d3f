"""A multilayer perceptron with two hidden layers, and its backward pass by hand.

h1 = act(W1 x + b1), h2 = act(W2 h1 + b2), s = W3 h2 + b3, loss = CE(softmax(s), y).
Backprop is the chain rule applied layer by layer from the loss down:
∂L/∂s = (softmax(s) − onehot(y)) / B, ∂L/∂W = δᵀ·input, δ_below = (δ·W) ⊙ act′.
`manual_gradients` writes that out; the lesson checks it against autograd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.models.registry import register_model

ACTIVATIONS = ("relu", "tanh")


@register_model("mlp", task="classify", inputs=("image", "points"), example_shape=(2,),
                description="MLP: two hidden layers, ReLU or tanh, optional dropout")
class MLP(nn.Module):
    """flatten -> Linear -> act -> Linear -> act -> Linear."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (2,)
        num_classes: int = 2
        hidden: int = 64
        activation: str = "relu"
        dropout: float = 0.0

        def __post_init__(self) -> None:
            if self.activation not in ACTIVATIONS:
                raise ValueError(f"activation={self.activation!r}: choose one of {', '.join(ACTIVATIONS)}")
            if self.hidden < 1:
                raise ValueError(f"hidden={self.hidden}: a layer needs at least 1 unit")

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        d_in = math.prod(cfg.input_shape)
        self.fc1 = nn.Linear(d_in, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, cfg.hidden)
        self.fc3 = nn.Linear(cfg.hidden, cfg.num_classes)
        self.drop = nn.Dropout(cfg.dropout)

    def act(self, z: Tensor) -> Tensor:
        return torch.relu(z) if self.cfg.activation == "relu" else torch.tanh(z)

    def forward(self, x: Tensor) -> Tensor:
        h1 = self.drop(self.act(self.fc1(x.flatten(1))))  # (B, H)
        h2 = self.drop(self.act(self.fc2(h1)))  # (B, H)
        return self.fc3(h2)  # (B, C)

    @torch.no_grad()
    def manual_gradients(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """∂(mean cross-entropy)/∂θ for every parameter, by the chain rule, no autograd.

        Exact for dropout = 0 (dropout is a random mask the check leaves out).
        """
        x = x.flatten(1)  # (B, D)
        B = x.shape[0]
        z1 = x @ self.fc1.weight.T + self.fc1.bias  # (B, H)
        h1 = self.act(z1)
        z2 = h1 @ self.fc2.weight.T + self.fc2.bias  # (B, H)
        h2 = self.act(z2)
        s = h2 @ self.fc3.weight.T + self.fc3.bias  # (B, C)
        d_s = (torch.softmax(s, dim=1) - F.one_hot(y, s.shape[1]).to(s.dtype)) / B  # (B, C)
        d_h2 = d_s @ self.fc3.weight  # (B, H)
        d_z2 = d_h2 * self._act_grad(z2, h2)
        d_h1 = d_z2 @ self.fc2.weight  # (B, H)
        d_z1 = d_h1 * self._act_grad(z1, h1)
        return {
            "fc1.weight": d_z1.T @ x, "fc1.bias": d_z1.sum(0),
            "fc2.weight": d_z2.T @ h1, "fc2.bias": d_z2.sum(0),
            "fc3.weight": d_s.T @ h2, "fc3.bias": d_s.sum(0),
        }

    def _act_grad(self, z: Tensor, h: Tensor) -> Tensor:
        """act′(z) from z and h = act(z): 1[z > 0] for ReLU, 1 − h² for tanh."""
        return (z > 0).to(z.dtype) if self.cfg.activation == "relu" else 1 - h * h
