"""Two-dimensional toy problems: two classes of points in the plane.

Each kind is generated from a seed with a local `torch.Generator` (never the global
RNG), fully vectorised, and scaled to lie roughly in [-1.5, 1.5]². The distributions do
not depend on the seed, so train and validation drawn with different seeds are two
samples of the same problem.

- blobs    two Gaussian clusters; linearly separable at the default noise
- moons    two interleaved half moons
- circles  an inner disc-like ring inside an outer ring
- spirals  two interleaved spirals of two turns: hopeless for a linear model
- xor      four quadrant clusters, opposite quadrants share a class
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dlcourse_tui.data.base import Dataset, Split

TOY2D_KINDS: tuple[str, ...] = ("blobs", "moons", "circles", "spirals", "xor")

#: Gaussian noise (standard deviation, in plane units) used when `noise` is None.
DEFAULT_NOISE: dict[str, float] = {
    "blobs": 0.25,
    "moons": 0.1,
    "circles": 0.08,
    "spirals": 0.04,
    "xor": 0.18,
}

#: Human names of the two classes of each kind.
TOY2D_CLASSES: dict[str, tuple[str, str]] = {
    "blobs": ("blob A", "blob B"),
    "moons": ("upper moon", "lower moon"),
    "circles": ("inner ring", "outer ring"),
    "spirals": ("spiral A", "spiral B"),
    "xor": ("same sign", "opposite sign"),
}

SPIRAL_TURNS = 2.0


def derive_seeds(seed: int, count: int) -> list[int]:
    """`count` distinct, reproducible child seeds derived from `seed`."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randint(0, 2**62, (count,), generator=g).tolist()


def balanced_labels(n: int, num_classes: int, g: torch.Generator) -> Tensor:
    """(n,) int64 labels, each class appearing n // num_classes or one more times, shuffled."""
    y = torch.arange(n, dtype=torch.int64) % num_classes  # (n,)
    return y[torch.randperm(n, generator=g)]


def make_toy2d(kind: str, n: int, *, seed: int, noise: float | None = None) -> tuple[Tensor, Tensor]:
    """Sample `n` labelled points of a 2-D toy problem.

    Returns x (n, 2) float32 and y (n,) int64 in {0, 1}, balanced. `noise` is the
    standard deviation of the Gaussian noise (for blobs: of each cluster); None picks
    the kind's default from `DEFAULT_NOISE`.
    """
    if kind not in TOY2D_KINDS:
        raise ValueError(f"unknown toy2d kind {kind!r}; choose one of {', '.join(TOY2D_KINDS)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    sigma = DEFAULT_NOISE[kind] if noise is None else float(noise)
    g = torch.Generator().manual_seed(int(seed))
    y = balanced_labels(n, 2, g)  # (n,)
    yf = y.to(torch.float32)  # (n,)
    sign = 2.0 * yf - 1.0  # (n,) -1 for class 0, +1 for class 1

    if kind == "blobs":
        centre = torch.stack([0.6 * sign, 0.4 * sign], dim=1)  # (n, 2)
        x = centre
    elif kind == "moons":
        t = torch.rand(n, generator=g) * math.pi  # (n,)
        upper = torch.stack([torch.cos(t), torch.sin(t)], dim=1)  # (n, 2)
        lower = torch.stack([1.0 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)  # (n, 2)
        x = torch.where(y[:, None] == 0, upper, lower)  # (n, 2) in [-1, 2] x [-0.5, 1]
        x = (x - torch.tensor([0.5, 0.25])) * 0.9  # (n, 2) centred
    elif kind == "circles":
        t = torch.rand(n, generator=g) * (2 * math.pi)  # (n,)
        r = 0.45 + 0.55 * yf  # (n,) radius 0.45 inner, 1.0 outer
        x = torch.stack([r * torch.cos(t), r * torch.sin(t)], dim=1)  # (n, 2)
    elif kind == "spirals":
        # radius grows linearly with the angle; the second arm is the first turned by pi
        t = torch.rand(n, generator=g)  # (n,) position along the arm
        t = 0.08 + 0.92 * t  # (n,) skip the crowded centre
        angle = t * (SPIRAL_TURNS * 2 * math.pi) + math.pi * yf  # (n,)
        r = 1.2 * t  # (n,)
        x = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1)  # (n, 2)
    else:  # xor
        quad_x = torch.randint(0, 2, (n,), generator=g).to(torch.float32) * 2 - 1  # (n,) ±1
        quad_y = quad_x * -sign  # (n,) class 0: same signs, class 1: opposite signs
        x = 0.6 * torch.stack([quad_x, quad_y], dim=1)  # (n, 2)

    x = x + sigma * torch.randn(n, 2, generator=g)  # (n, 2)
    return x.to(torch.float32).contiguous(), y


def toy2d_dataset(kind: str, *, n_train: int, n_val: int, seed: int, noise: float | None = None) -> Dataset:
    """A 2-D toy problem as a `Dataset`: train and val are independent samples of one distribution."""
    s_train, s_val = derive_seeds(seed, 2)
    x_tr, y_tr = make_toy2d(kind, n_train, seed=s_train, noise=noise)
    x_va, y_va = make_toy2d(kind, n_val, seed=s_val, noise=noise)
    return Dataset(
        name=kind,
        kind="points",
        train=Split(x_tr, y_tr),
        val=Split(x_va, y_va),
        classes=TOY2D_CLASSES[kind],
        input_shape=(2,),
    )
