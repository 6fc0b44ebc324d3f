"""A small U-Net that predicts the noise ε in a noisy image x_t, for DDPM (Ho et al.
2020, "Denoising Diffusion Probabilistic Models"; Ronneberger et al. 2015, U-Net).

    ε_θ(x_t, t[, y])   trained with   L = ‖ε − ε_θ(√ᾱ_t x₀ + √(1 − ᾱ_t) ε, t)‖²

The timestep t enters as a sinusoidal embedding (as in the Transformer), passed
through an MLP and added to every residual block; with `conditional`, a learned class
embedding is added to it, so the network models p(x | y). With `null_class` as well, one
more embedding, index num_classes, stands for "no class" ∅: trained with label dropout
(Ho & Salimans 2022, classifier-free guidance) the same network then models p(x) too,
ε_θ(x_t, t, ∅), which concept erasure (the unlearning lesson) needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.models.registry import register_model


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """(B,) integer steps → (B, dim): [sin(t·ω_k), cos(t·ω_k)], ω_k = 10000^(−k/(dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)  # (dim/2,)
    args = t.float()[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat([args.sin(), args.cos()], dim=1)  # (B, dim)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, + time embedding, GroupNorm → SiLU → conv; plus a skip."""

    def __init__(self, c_in: int, c_out: int, emb: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, c_out, H, W)
        h = h + self.emb(e)[:, :, None, None]  # time (and class) added per channel
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


@register_model("unet", task="diffusion", inputs=("image",), example_shape=(1, 28, 28),
                description="small U-Net ε_θ(x_t, t[, y]): two resolutions, timestep (and class) embedding")
class UNet(nn.Module):
    """pixel-unshuffle → in-conv → res (c) → down → res (2c) → mid res → res (2c, skip)
    → up → res (c, skip) → out-conv → pixel-shuffle.

    `patch` = 2 first folds each 2×2 pixel square into channels (28×28×1 → 14×14×4), so
    the convolutions run at 14×14 and 7×7: four times cheaper than at full resolution,
    which is what makes this train in minutes on a CPU."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (1, 28, 28)
        num_classes: int = 10
        channels: int = 32  # c
        patch: int = 2  # fold patch×patch pixels into channels first (1: full resolution)
        conditional: bool = True  # add a class embedding: ε_θ(x_t, t, y) models p(x | y)
        null_class: bool = False  # one more embedding, y = num_classes, for "no class" ∅ (label dropout)

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            if len(self.input_shape) != 3 or self.patch < 1:
                raise ValueError(f"the U-Net here takes images (C, H, W), not {self.input_shape} (patch={self.patch})")
            if any(s % (2 * self.patch) for s in self.input_shape[1:]):
                raise ValueError(f"image sides {self.input_shape[1:]} must be multiples of 2·patch = {2 * self.patch}")
            if self.channels < 8 or self.channels % 8:
                raise ValueError(f"channels={self.channels}: give a multiple of 8 (group norm uses 8 groups)")
            if self.null_class and not self.conditional:
                raise ValueError("null_class=true needs conditional=true: the null class is one more class embedding")

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        c, ch = cfg.channels, cfg.input_shape[0] * cfg.patch ** 2
        emb = 4 * c
        self.time_mlp = nn.Sequential(nn.Linear(c, emb), nn.SiLU(), nn.Linear(emb, emb))
        classes = cfg.num_classes + 1 if cfg.null_class else cfg.num_classes  # + ∅ at index num_classes
        self.class_emb = nn.Embedding(classes, emb) if cfg.conditional else None
        self.inc = nn.Conv2d(ch, c, 3, padding=1)
        self.down1 = ResBlock(c, c, emb)
        self.pool = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.down2 = ResBlock(c, 2 * c, emb)
        self.mid = ResBlock(2 * c, 2 * c, emb)
        self.up2 = ResBlock(4 * c, 2 * c, emb)
        self.up1 = ResBlock(3 * c, c, emb)
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, ch, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        p = self.cfg.patch
        e = self.time_mlp(timestep_embedding(t, self.cfg.channels))  # (B, 4c)
        if self.class_emb is not None and y is not None:
            e = e + self.class_emb(y)
        h0 = self.inc(F.pixel_unshuffle(x, p))  # (B, c, R, R), R = H / patch
        h1 = self.down1(h0, e)  # (B, c, R, R)
        h2 = self.down2(self.pool(h1), e)  # (B, 2c, R/2, R/2)
        m = self.mid(h2, e)  # (B, 2c, R/2, R/2)
        u2 = self.up2(torch.cat([m, h2], dim=1), e)  # (B, 2c, R/2, R/2)
        u1 = self.up1(torch.cat([F.interpolate(u2, scale_factor=2.0, mode="nearest"), h1], dim=1), e)  # (B, c, R, R)
        return F.pixel_shuffle(self.out(u1), p)  # (B, C, H, W): predicted ε


@register_model("unet_unlearn", task="unlearn", inputs=("image",), example_shape=(1, 28, 28),
                description="the diffusion lesson's U-Net with its null class ∅, fine-tuned to erase a class")
class UnlearnUNet(UNet):
    """The same network as "unet" (a diffusion run's weights load into it as they are),
    offered to the unlearning task, with the null class on by default: erasure needs ε_θ(x_t, t, ∅)."""

    @dataclass
    class Config(UNet.Config):
        null_class: bool = True
