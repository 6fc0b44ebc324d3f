"""The in-memory form every dataset takes: tensors of one split, ready for the device."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import Tensor


@dataclass(frozen=True)
class Split:
    """One split of a dataset held as tensors.

    x is (N, C, H, W) uint8 for images, (N, D) float32 for points or (N, T, D) float32 for
    sequences; y is (N,) int64. For token data (sequence to sequence) x is (N, S) int64
    source tokens and y (N, T) int64 target tokens.
    extras holds per-item targets other lessons need, indexed like x: for `shapes`
    "masks" (N, H, W) uint8, "boxes" (N, K, 4) float32, "box_labels" (N, K) int64 and
    "captions" (a list of N strings).
    """

    x: Tensor
    y: Tensor
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> "Split":
        """The same split with every tensor moved to `device` (lists stay as they are)."""
        extras = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.extras.items()}
        return replace(self, x=self.x.to(device), y=self.y.to(device), extras=extras)


@dataclass(frozen=True)
class Dataset:
    """A named dataset: train and validation splits plus what a model needs to know."""

    name: str
    kind: Literal["image", "points", "sequence", "tokens"]
    train: Split
    val: Split
    classes: tuple[str, ...]
    input_shape: tuple[int, ...]  # (C, H, W) for images, (D,) for points, (T, D) for sequences, (S,) for tokens
    mean: tuple[float, ...] = ()  # per-channel mean of train images in [0, 1]; empty for points
    std: tuple[float, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device: torch.device | str) -> "Dataset":
        return replace(self, train=self.train.to(device), val=self.val.to(device))


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] of (N, C, H, W) uint8 images."""
    x = images.float().div_(255)  # (N, C, H, W)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())
