"""Checks of conv2d_naive and max_pool_naive against torch's conv2d and max_pool2d."""

import torch.nn.functional as F

from dlcourse_tui.exercises.checking import check, expect_close, randn


def conv(mine, n, c, h, w, f, k, stride, padding, seed, kw=None) -> None:
    x, wt, b = randn(n, c, h, w, seed=seed), randn(f, c, k, kw or k, seed=seed + 1), randn(f, seed=seed + 2)
    got = mine.conv2d_naive(x.clone(), wt.clone(), b.clone(), stride=stride, padding=padding)
    want = F.conv2d(x, wt, b, stride=stride, padding=padding)
    expect_close("out", got, want, {"x": x, "w": wt, "b": b, "stride": stride, "padding": padding}, atol=1e-9)


def pool(mine, n, c, h, w, k, stride, seed) -> None:
    x = randn(n, c, h, w, seed=seed)
    got = mine.max_pool_naive(x.clone(), kernel=k, stride=stride)
    expect_close("out", got, F.max_pool2d(x, k, stride), {"x": x, "kernel": k, "stride": stride}, atol=0)


@check("conv2d_naive: one 4×4 image, one 3×3 filter, no padding")
def conv_small(mine, ref) -> None:
    conv(mine, 1, 1, 4, 4, 1, 3, stride=1, padding=0, seed=0)


@check("conv2d_naive: 2 images, 3 channels, 4 filters, padding 1")
def conv_channels(mine, ref) -> None:
    conv(mine, 2, 3, 5, 5, 4, 3, stride=1, padding=1, seed=10)


@check("conv2d_naive: stride 2, padding 1")
def conv_stride(mine, ref) -> None:
    conv(mine, 2, 2, 7, 7, 3, 3, stride=2, padding=1, seed=20)


@check("max_pool_naive: 2×2 windows, stride 2")
def pool_2(mine, ref) -> None:
    pool(mine, 2, 3, 4, 4, 2, 2, seed=30)


@check("conv2d_naive: a 2×3 kernel on a non-square image", hidden=True)
def conv_rect(mine, ref) -> None:
    conv(mine, 1, 2, 6, 5, 2, 2, stride=1, padding=0, seed=40, kw=3)


@check("max_pool_naive: 3×3 windows, stride 2, odd size", hidden=True)
def pool_3(mine, ref) -> None:
    pool(mine, 1, 2, 7, 7, 3, 2, seed=50)
