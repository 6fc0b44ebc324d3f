"""A convolution and max pooling written with loops: the reference solution."""

import torch.nn.functional as F
from torch import Tensor


def conv2d_naive(x: Tensor, w: Tensor, b: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    """out[n, f, i, j] = b[f] + Σ w[f] ⊙ (the patch of x_pad at (i·stride, j·stride))."""
    n, _, h, width = x.shape
    f, _, kh, kw = w.shape
    x_pad = F.pad(x, (padding, padding, padding, padding))  # (N, C, H + 2p, W + 2p)
    h_out, w_out = (h + 2 * padding - kh) // stride + 1, (width + 2 * padding - kw) // stride + 1
    out = x.new_zeros(n, f, h_out, w_out)
    for i in range(h_out):
        for j in range(w_out):
            patch = x_pad[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]  # (N, C, kH, kW)
            out[:, :, i, j] = (patch[:, None] * w[None]).sum(dim=(2, 3, 4)) + b  # (N, F)
    return out


def max_pool_naive(x: Tensor, kernel: int = 2, stride: int = 2) -> Tensor:
    """out[n, c, i, j] = max of the kernel × kernel window at (i·stride, j·stride)."""
    n, c, h, width = x.shape
    h_out, w_out = (h - kernel) // stride + 1, (width - kernel) // stride + 1
    out = x.new_zeros(n, c, h_out, w_out)
    for i in range(h_out):
        for j in range(w_out):
            window = x[:, :, i * stride:i * stride + kernel, j * stride:j * stride + kernel]  # (N, C, k, k)
            out[:, :, i, j] = window.amax(dim=(2, 3))
    return out
