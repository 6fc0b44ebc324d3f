"""An autoencoder of chapter 3: encoder f, a narrow code z, decoder g, trained to give
its input back (Hinton & Salakhutdinov 2006, "Reducing the dimensionality of data with
neural networks").

    z = f(x),   x̂ = g(z),   L = ‖x − x̂‖² (mean over pixels)

Pixels are read in [0, 1]; the decoder ends in a sigmoid, so x̂ is in [0, 1] too. The
width of z (`latent`) is the bottleneck: the fewer numbers, the more the code has to
keep only what matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlcourse_tui.models.registry import register_model


def check_code_config(input_shape: tuple[int, ...], latent: int, hidden: int) -> tuple[int, ...]:
    """The image shape as a tuple, or ValueError for a non-image input or an empty layer
    (shared by the autoencoder and the VAE, whose configs differ only in defaults)."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"this model takes images (C, H, W), not inputs of shape {shape}")
    if latent < 1 or hidden < 1:
        raise ValueError(f"latent={latent}, hidden={hidden}: both need at least 1 unit")
    return shape


@register_model("autoencoder", task="autoencode", inputs=("image",), example_shape=(1, 28, 28),
                description="autoencoder: MLP encoder → bottleneck code z → MLP decoder, L2 reconstruction")
class Autoencoder(nn.Module):
    """flatten → Linear → ReLU → Linear (z) → Linear → ReLU → Linear → sigmoid → image."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (1, 28, 28)
        latent: int = 16  # width of the code z: the bottleneck
        hidden: int = 256

        def __post_init__(self) -> None:
            self.input_shape = check_code_config(self.input_shape, self.latent, self.hidden)

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        d = math.prod(cfg.input_shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.latent))
        self.decoder = nn.Sequential(nn.Linear(cfg.latent, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, d))

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)  # (B, C, H, W) -> (B, latent)

    def decode(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(z)).view(-1, *self.cfg.input_shape)  # (B, latent) -> (B, C, H, W) in [0, 1]

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))  # (B, C, H, W)
