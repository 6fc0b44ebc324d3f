"""Linear models of chapter 1.

`linear`: a linear classifier, scores s = W x + b over the flattened pixels, trained
with softmax + cross-entropy; each row of W is a class template (CS231n, "Linear
classification").
`neuron`: a single neuron, p(y=1 | x) = σ(wᵀφ(x) + b), logistic regression on 2-D
points, with φ the monomials of x up to `degree` so that it can overfit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlcourse_tui.models.registry import register_model


@register_model("linear", task="classify", inputs=("image", "points"), example_shape=(3, 32, 32),
                description="linear classifier: scores = W·x + b on raw pixels")
class LinearClassifier(nn.Module):
    """y = W x + b over the flattened input."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (3, 32, 32)
        num_classes: int = 10

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.fc = nn.Linear(math.prod(cfg.input_shape), cfg.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.flatten(1))  # (B, D) -> (B, C)

    def class_templates(self) -> Tensor:
        """The rows of W reshaped to the input's shape: (C, *input_shape)."""
        return self.fc.weight.detach().reshape(self.cfg.num_classes, *self.cfg.input_shape)


def monomial_exponents(degree: int) -> list[tuple[int, int]]:
    """(i, j) for every monomial x1^i x2^j with 1 <= i + j <= degree."""
    return [(i, d - i) for d in range(1, degree + 1) for i in range(d, -1, -1)]


@register_model("neuron", task="classify", inputs=("points",), example_shape=(2,),
                description="single neuron: logistic regression on 2-D points, polynomial features")
class SingleNeuron(nn.Module):
    """One logit wᵀφ(x) + b; φ(x) are the monomials of (x1, x2) up to `degree`."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (2,)
        num_classes: int = 2
        degree: int = 1

        def __post_init__(self) -> None:
            if tuple(self.input_shape) != (2,):
                raise ValueError(f"a single neuron here takes 2-D points, not inputs of shape {tuple(self.input_shape)}")
            if not 1 <= self.degree <= 12:
                raise ValueError(f"degree={self.degree} must be between 1 and 12")
            if self.num_classes != 2:
                raise ValueError("a single neuron separates 2 classes")

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        exps = torch.tensor(monomial_exponents(cfg.degree), dtype=torch.float32)  # (F, 2)
        self.register_buffer("exponents", exps, persistent=False)
        self.fc = nn.Linear(exps.shape[0], 1)

    def features(self, x: Tensor) -> Tensor:
        """φ(x): (B, 2) -> (B, F), every monomial of degree 1..degree."""
        return (x[:, None, :] ** self.exponents[None]).prod(dim=-1)  # (B, F, 2) -> (B, F)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))  # (B, 1): the logit of class 1
