"""The pretext tasks of the self-supervised lesson: labels made from the images themselves.

- RotNet (Gidaris et al. 2018, "Unsupervised Representation Learning by Predicting Image
  Rotations"): every image of the batch is shown at 0°, 90°, 180° and 270°, all four in the
  same batch as in the paper, and the network names the rotation (4 classes).
- Jigsaw (Noroozi & Favaro 2016): the image is cut into a g×g grid of tiles, each tile
  cropped at a random offset inside its cell (so neighbouring tiles do not touch: no edge to
  line up) and standardised on its own (no brightness or colour to line up), the tiles are
  shown in the order of one permutation from a fixed set, and the network names which. The
  set is chosen greedily for large Hamming distance (the paper's Algorithm 1, here keeping
  the smallest distance to the chosen ones largest), so no two permutations are near-twins.
- Colorization (Zhang et al. 2016, "Colorful Image Colorization"; here as a regression): the
  network sees the grey image and predicts the colour it lost, as an 8×8 map of chroma
  (colour minus grey).
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

import torch
import torch.nn.functional as F
from torch import Tensor

from dlcourse_tui.data.augment import _to_unit
from dlcourse_tui.errors import UserError

TILE_PX = 16  # every jigsaw tile is resampled to 16×16: the CNN's four pools take it to 1×1
COLOR_MAP = 8  # colorization predicts an 8×8 chroma map
LUMA = (0.299, 0.587, 0.114)


# ---------------------------------------------------------------------------- RotNet
def rotate_all(x: Tensor) -> tuple[Tensor, Tensor]:
    """The batch at 0°, 90°, 180° and 270° (counter-clockwise) and the rotation labels:
    (B, C, H, W) -> (4B, C, H, W), (4B,) in {0, 1, 2, 3}."""
    rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])  # (4B, C, W, H); square images
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])  # (4B,)
    return rotated, labels


# ---------------------------------------------------------------------------- Jigsaw
def max_permutations(grid: int) -> int:
    """How many orderings a grid×grid puzzle has: (grid²)!."""
    return math.factorial(grid * grid)


def hamming_permutations(grid: int, count: int, seed: int) -> Tensor:
    """`count` permutations of the grid² tiles, each as far as possible (in Hamming distance:
    tiles out of place relative to each other) from those chosen before: (count, grid²) int64.

    Greedy: start from a random permutation; then repeatedly take the permutation whose
    smallest distance to the chosen ones is largest (the first such, so it is deterministic)."""
    tiles = grid * grid
    if not 2 <= count <= max_permutations(grid):
        raise UserError(f"n_permutations={count}: a {grid}×{grid} jigsaw has {max_permutations(grid):,} orderings of its "
                        f"{tiles} tiles; choose 2 to {max_permutations(grid):,}.")
    every = _all_permutations(tiles)  # (T!, T)
    slots = np.ascontiguousarray(every.T)  # (T, T!): one row per slot, so each comparison reads memory in order

    def distance_to(p: np.ndarray) -> np.ndarray:  # (T!,) tiles out of place relative to p
        same = np.zeros(slots.shape[1], dtype=np.uint8)
        for i in range(tiles):
            same += slots[i] == p[i]
        return tiles - same

    g = torch.Generator().manual_seed(seed)
    chosen = [int(torch.randint(len(every), (1,), generator=g))]
    nearest = distance_to(every[chosen[0]])  # (T!,) distance to the closest chosen permutation
    for _ in range(count - 1):
        j = int(nearest.argmax())  # the first of the farthest
        chosen.append(j)
        nearest = np.minimum(nearest, distance_to(every[j]))
    return torch.from_numpy(every[chosen].astype(np.int64))


@functools.lru_cache(maxsize=2)
def _all_permutations(tiles: int) -> np.ndarray:
    """Every ordering of `tiles` tiles, in lexicographic order: (tiles!, tiles) uint8."""
    flat = np.fromiter(itertools.chain.from_iterable(itertools.permutations(range(tiles))), dtype=np.uint8)
    return flat.reshape(-1, tiles)


def min_hamming(perms: Tensor) -> int:
    """The smallest Hamming distance between two permutations of the set."""
    d = (perms[:, None, :] != perms[None, :, :]).sum(-1)  # (P, P)
    d.fill_diagonal_(perms.shape[1] + 1)
    return int(d.min())


def tile_side(size: int, grid: int) -> tuple[int, int]:
    """A jigsaw cell's side in pixels and how many of them are left out at random: (cell, margin)."""
    cell = size // grid
    return cell, max(1, cell // 4)


def jigsaw_tiles(x: Tensor, grid: int, g: torch.Generator) -> Tensor:
    """The grid×grid tiles of each image in reading order, each cropped at a random offset
    inside its cell, resampled to TILE_PX and standardised per channel:
    (B, C, H, W) -> (B, grid², C, TILE_PX, TILE_PX) floats."""
    B, C, H, W = x.shape
    cell, margin = tile_side(H, grid)  # up to `margin` pixels of each cell are left out, at random
    side = cell - margin
    u = _to_unit(x)
    tiles = []
    for r in range(grid):
        for c in range(grid):
            oy = (torch.rand(B, generator=g, device=x.device) * (margin + 1)).long().clamp_(max=margin)  # (B,)
            ox = (torch.rand(B, generator=g, device=x.device) * (margin + 1)).long().clamp_(max=margin)
            rows = r * cell + oy[:, None] + torch.arange(side, device=x.device)  # (B, side)
            cols = c * cell + ox[:, None] + torch.arange(side, device=x.device)  # (B, side)
            flat = (rows[:, :, None] * W + cols[:, None, :]).view(B, 1, side * side).expand(B, C, side * side)
            tiles.append(u.flatten(2).gather(2, flat).view(B, C, side, side))  # (B, C, side, side)
    t = torch.stack(tiles, dim=1).flatten(0, 1)  # (B·T, C, side, side)
    if side != TILE_PX:
        t = F.interpolate(t, size=(TILE_PX, TILE_PX), mode="bilinear", align_corners=False)
    mean = t.mean(dim=(2, 3), keepdim=True)
    std = t.std(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    t = (t - mean) / std  # each tile on its own: no shared brightness or colour gives its place away
    return t.view(B, grid * grid, C, TILE_PX, TILE_PX)


def at_tile_scale(x: Tensor, grid: int) -> Tensor:
    """The whole image as the jigsaw's tiles showed it: enlarged by the tiles' factor
    (TILE_PX / their side: 2 for 3×3 on 32 px) and standardised per image and channel.
    (B, C, H, W) -> (B, C, H·f, W·f) floats; the encoder reads it whole (Noroozi & Favaro
    transfer their convolutions to whole images the same way)."""
    cell, margin = tile_side(x.shape[-1], grid)
    u = F.interpolate(_to_unit(x).float(), scale_factor=TILE_PX / (cell - margin), mode="bilinear", align_corners=False)
    mean = u.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    std = u.std(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    return (u - mean) / std


def shuffle_tiles(tiles: Tensor, perms: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Show each image's tiles in the order of a random permutation of the set: slot i shows
    tile perms[k, i]. (B, T, ...) -> (B, T, ...), and k (B,)."""
    B = tiles.shape[0]
    k = (torch.rand(B, generator=g, device=tiles.device) * len(perms)).long().clamp_(max=len(perms) - 1)  # (B,)
    order = perms.to(tiles.device)[k]  # (B, T)
    index = order.view(B, -1, *([1] * (tiles.dim() - 2))).expand_as(tiles)
    return tiles.gather(1, index), k


# ---------------------------------------------------------------------------- colorization
def luma(x: Tensor) -> Tensor:
    """Grey levels in [0, 1]: (B, 3, H, W) uint8 or float -> (B, 1, H, W)."""
    u = _to_unit(x)
    return u[:, :1] * LUMA[0] + u[:, 1:2] * LUMA[1] + u[:, 2:3] * LUMA[2]


def chroma_target(x: Tensor) -> Tensor:
    """What the grey image lost: colour minus grey, averaged to COLOR_MAP × COLOR_MAP:
    (B, 3, H, W) -> (B, 3, 8, 8), values in about [−1, 1]."""
    u = _to_unit(x)
    return F.adaptive_avg_pool2d(u - luma(x), COLOR_MAP)
