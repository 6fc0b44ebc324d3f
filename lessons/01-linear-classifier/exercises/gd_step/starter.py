"""One step of SGD with momentum and weight decay (lesson: linear classifier)."""

import torch
from torch import Tensor


def sgd_step(w: Tensor, dw: Tensor, velocity: Tensor, lr: float, momentum: float,
             weight_decay: float) -> tuple[Tensor, Tensor]:
    """The weights and the velocity after one update.

    w:        the parameter, any shape (e.g. (C, D) for W, (C,) for b)
    dw:       ∂L/∂w, the same shape
    velocity: the running velocity v, the same shape (zeros before the first step)

    g     = dw + weight_decay · w          (weight decay: the gradient of ½·α·‖w‖²)
    v_new = momentum · v + g
    w_new = w − lr · v_new

    Returns (w_new, v_new), new tensors of w's shape and dtype.
    """
    raise NotImplementedError  # your code here
