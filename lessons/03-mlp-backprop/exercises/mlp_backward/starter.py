"""Backpropagation through a two-hidden-layer MLP (lesson: MLP and backprop)."""

import torch
import torch.nn.functional as F
from torch import Tensor


def mlp_backward(x: Tensor, y: Tensor, params: dict[str, Tensor], activation: str = "relu") -> dict[str, Tensor]:
    """∂L/∂θ for every parameter θ of the MLP, by the chain rule (no autograd).

    x: (N, D) inputs    y: (N,) labels in 0 … C−1    activation: "relu" or "tanh"
    params: "fc1.weight" (H, D), "fc1.bias" (H,), "fc2.weight" (H, H), "fc2.bias" (H,),
            "fc3.weight" (C, H), "fc3.bias" (C,)      (a Linear layer computes x Wᵀ + b)

    forward:  z1 = x W1ᵀ + b1, h1 = act(z1);  z2 = h1 W2ᵀ + b2, h2 = act(z2);  s = h2 W3ᵀ + b3
              L = mean cross-entropy of softmax(s) against y
    backward: δs = (softmax(s) − onehot(y)) / N                       (N, C)
              ∂L/∂W3 = δsᵀ h2,  ∂L/∂b3 = Σ_rows δs,  δh2 = δs W3
              δz2 = δh2 ⊙ act′(z2)    (relu′ = 1[z > 0], tanh′ = 1 − tanh²)
              … and the same again for layer 2 and layer 1.

    Returns a dict with the same keys as params, each gradient of its parameter's shape.
    """
    raise NotImplementedError  # your code here
