"""Views for self-supervised learning: two random versions of the same images, made as
batched tensor operations with a torch.Generator (the ops of augment.py, plus three that
contrastive methods need).

A view here is: mirror (p = 0.5) → a random resized crop (a square window of side s ∈
[crop, 1] of the image, anywhere in it, enlarged back to the full size) → a small affine
distortion → a random order of the three colour channels (p = shuffle) → a colour cast →
grey (p = gray). Each one takes away a cue that would tell two views of one image apart
from views of other images without looking at the shape: where it sits and how big it is
(crop), its colours (shuffle, cast, grey). SimCLR (Chen et al. 2020, §3) found crop plus
colour distortion the composition that matters most.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from dlcourse_tui.data.augment import _from_unit, _rand, _to_unit, color_cast, hflip, random_affine

_ORDERS = torch.tensor([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])  # the 3! channel orders
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as torchvision's rgb_to_grayscale


def resized_crop(x: Tensor, smallest: float, g: torch.Generator) -> Tensor:
    """A square window of side s·W (s uniform in [smallest, 1]) at a random place inside the
    image, resampled bilinearly to H×W: (B, C, H, W) -> same."""
    if smallest >= 1:
        return x
    B = x.shape[0]
    s = smallest + (1 - smallest) * _rand(B, g, x.device)  # (B,) side of the window, as a fraction
    tx = (_rand(B, g, x.device) * 2 - 1) * (1 - s)  # (B,) its centre, in [-1, 1] coordinates, kept inside
    ty = (_rand(B, g, x.device) * 2 - 1) * (1 - s)
    theta = torch.zeros(B, 2, 3, device=x.device)  # (B, 2, 3): output pixel -> where it reads in the input
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = s, s, tx, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
    y = F.grid_sample(_to_unit(x), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return _from_unit(y, x)


def shuffle_channels(x: Tensor, p: float, g: torch.Generator) -> Tensor:
    """With probability p, the three colour channels in one of the 6 orders at random."""
    if p <= 0 or x.shape[1] != 3:
        return x
    B = x.shape[0]
    order = _ORDERS.to(x.device)[(_rand(B, g, x.device) * 6).long().clamp_(max=5)]  # (B, 3)
    keep = _rand(B, g, x.device) >= p  # (B,)
    order = torch.where(keep[:, None], _ORDERS[0].to(x.device), order)
    return x.gather(1, order[:, :, None, None].expand_as(x))


def grayscale(x: Tensor, p: float, g: torch.Generator) -> Tensor:
    """With probability p, luma 0.299 R + 0.587 G + 0.114 B in all three channels."""
    if p <= 0 or x.shape[1] != 3:
        return x
    chosen = _rand(x.shape[0], g, x.device) < p  # (B,)
    u = _to_unit(x)
    grey = (u[:, 0] * _LUMA[0] + u[:, 1] * _LUMA[1] + u[:, 2] * _LUMA[2])[:, None].expand_as(u)  # (B, 3, H, W)
    return torch.where(chosen.view(-1, 1, 1, 1), _from_unit(grey.clone(), x), x)


@dataclass(frozen=True)
class ViewConfig:
    """How strongly each view is distorted; 0 switches a step off (crop: 1)."""

    crop: float = 0.75  # smallest window side, as a fraction of the image
    affine: float = 0.5  # rotation ±15°, scale ±7.5 %, shear ±0.075 (augment.random_affine at this strength)
    shuffle: float = 0.8  # probability of a random channel order
    color: float = 0.4  # colour-cast strength (augment.color_cast)
    gray: float = 0.2  # probability of a grey view


def make_view(x: Tensor, cfg: ViewConfig, g: torch.Generator) -> Tensor:
    """One random view of every image of the batch (B, C, H, W): same shape, dtype, range."""
    x = hflip(x, 0.5, g)
    x = resized_crop(x, cfg.crop, g)
    if cfg.affine > 0:
        x = random_affine(x, cfg.affine, g)
    x = shuffle_channels(x, cfg.shuffle, g)
    if cfg.color > 0:
        x = color_cast(x, cfg.color, g)
    return grayscale(x, cfg.gray, g)
