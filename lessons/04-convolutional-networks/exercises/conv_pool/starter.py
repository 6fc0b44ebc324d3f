"""A convolution and max pooling written with loops (lesson: convolutional networks)."""

import torch
import torch.nn.functional as F
from torch import Tensor


def conv2d_naive(x: Tensor, w: Tensor, b: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    """The forward pass of a convolution layer (cross-correlation, as every library computes it).

    x: (N, C, H, W) images    w: (F, C, kH, kW) filters    b: (F,) biases
    padding: zeros added on every side of x;  stride: the step between patches

    H_out = (H + 2·padding − kH) // stride + 1      (W_out likewise)
    out[n, f, i, j] = b[f] + Σ_c Σ_u Σ_v w[f, c, u, v] · x_pad[n, c, i·stride + u, j·stride + v]

    Returns out of shape (N, F, H_out, W_out). Loop over n, f, i, j (or fewer): no F.conv2d, no unfold.
    """
    raise NotImplementedError  # your code here


def max_pool_naive(x: Tensor, kernel: int = 2, stride: int = 2) -> Tensor:
    """Max pooling: the largest value of each kernel × kernel window, per image and channel.

    x: (N, C, H, W)    H_out = (H − kernel) // stride + 1  (W_out likewise)
    out[n, c, i, j] = max over u, v < kernel of x[n, c, i·stride + u, j·stride + v]

    Returns out of shape (N, C, H_out, W_out). Loops: no F.max_pool2d.
    """
    raise NotImplementedError  # your code here
