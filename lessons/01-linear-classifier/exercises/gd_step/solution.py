"""One step of SGD with momentum and weight decay: the reference solution."""

from torch import Tensor


def sgd_step(w: Tensor, dw: Tensor, velocity: Tensor, lr: float, momentum: float,
             weight_decay: float) -> tuple[Tensor, Tensor]:
    """v ← μ·v + (∂L/∂w + α·w);  w ← w − lr·v."""
    g = dw + weight_decay * w  # same shape as w
    v = momentum * velocity + g
    return w - lr * v, v
