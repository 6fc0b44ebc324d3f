"""A small ResNet for fast CIFAR-10 training (the "ResNet-9" of D. Page's DAWNBench
entry, "How to train your ResNet", 2018, which the later fast CIFAR-10 recipes refine).

A residual block adds its input back to what two convolutions make of it,

    y = x + F(x),    F = conv → BN → ReLU → conv → BN → ReLU,

so each block only has to learn a correction to the identity, and gradients reach the
early layers through the additions unchanged. The network: a prep conv, then three
stages (conv → BN → ReLU → 2×2 max-pool; stages 1 and 3 followed by a residual block),
a global max-pool and one linear layer whose logits are scaled by 0.125.

For speed on a GPU the model keeps its weights and activations in channels_last memory
layout and runs its body under bf16 autocast on CUDA only (`bf16`); on a CPU it runs in
float32, slowly. Train it with one-cycle (`--set schedule=onecycle`) as the recipe does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlcourse_tui.models.registry import register_model


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    """3×3 conv (padding 1, no bias) → BatchNorm → ReLU: (B, c_in, H, W) -> (B, c_out, H, W)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """y = x + F(x) with F two conv_bn layers of the same width."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.f = nn.Sequential(conv_bn(c, c), conv_bn(c, c))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.f(x)  # (B, C, H, W)


@register_model("resnet_fast", task="classify", inputs=("image",), example_shape=(3, 32, 32),
                description="ResNet-9 for fast CIFAR-10 (channels_last, bf16 autocast on CUDA; use one-cycle)")
class ResNetFast(nn.Module):
    """prep → [stage 1 + residual] → stage 2 → [stage 3 + residual] → global max-pool → linear."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (3, 32, 32)
        num_classes: int = 10
        width: int = 64  # channels of the prep conv; the stages have 2×, 4× and 8× this
        bf16: bool = True  # autocast to bfloat16 on CUDA (ignored on other devices)
        logit_scale: float = 0.125

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            if len(self.input_shape) != 3:
                raise ValueError(f"resnet_fast takes images (C, H, W), not inputs of shape {self.input_shape}")
            if self.width < 1:
                raise ValueError(f"width={self.width}: needs at least 1 channel")
            if min(self.input_shape[1:]) < 8:
                raise ValueError(f"input {self.input_shape[1]}×{self.input_shape[2]}: three 2×2 pools need at least 8×8")

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.prep = conv_bn(cfg.input_shape[0], w)  # (B, w, H, W)
        self.stage1 = nn.Sequential(conv_bn(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w))  # (B, 2w, H/2, W/2)
        self.stage2 = nn.Sequential(conv_bn(2 * w, 4 * w), nn.MaxPool2d(2))  # (B, 4w, H/4, W/4)
        self.stage3 = nn.Sequential(conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), Residual(8 * w))  # (B, 8w, H/8, W/8)
        self.head = nn.Linear(8 * w, cfg.num_classes, bias=False)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # (B, C, H, W) stored as (B, H, W, C)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cfg.bf16 and x.is_cuda):
            x = self.stage3(self.stage2(self.stage1(self.prep(x))))  # (B, 8w, H/8, W/8)
            x = torch.amax(x, dim=(2, 3))  # (B, 8w) global max-pool
            logits = self.head(x) * self.cfg.logit_scale  # (B, classes)
        return logits.float()

    def first_layer_filters(self) -> Tensor:
        """The prep convolution's weights: (w, C_in, 3, 3)."""
        return self.prep[0].weight.detach()  # (w, C_in, 3, 3)
