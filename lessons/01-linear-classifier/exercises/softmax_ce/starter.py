"""Softmax cross-entropy, forward and backward (lesson: linear classifier)."""

import torch
from torch import Tensor


def softmax_cross_entropy(scores: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """The mean cross-entropy of softmax(scores) against the labels y, and its gradient.

    scores: (N, C) class scores s = W x + b, one row per example
    y:      (N,) the right class of each example, integers in 0 … C−1

    p_ij = exp(s_ij − max_j s_ij) / Σ_k exp(s_ik − max_j s_ij)     (softmax, stable)
    L    = −(1/N) Σ_i log p_{i, y_i}
    ∂L/∂s_ij = (p_ij − 1[j = y_i]) / N

    Returns (loss, dscores): loss a 0-d tensor, dscores of shape (N, C), both in scores' dtype.
    No autograd: compute dscores from the formula.
    """
    raise NotImplementedError  # your code here
