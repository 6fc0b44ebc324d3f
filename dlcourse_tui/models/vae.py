"""A variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

The encoder outputs a Gaussian q(z | x) = N(μ(x), diag σ²(x)) instead of one code; a
sample is drawn with the reparameterisation trick, so gradients flow through μ and σ:

    z = μ(x) + σ(x) ⊙ ε,   ε ~ N(0, I)

and the decoder gives Bernoulli means p(x | z) over the pixels. Training maximises the
ELBO = E_q[log p(x | z)] − KL(q(z | x) ‖ N(0, I)) (see tasks/generate.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlcourse_tui.models.autoencoder import check_code_config
from dlcourse_tui.models.registry import register_model


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """z = μ + σ ⊙ ε with σ = exp(½ log σ²), ε ~ N(0, I)."""
    return mu + (0.5 * logvar).exp() * torch.randn_like(mu)  # (B, latent)


@register_model("vae", task="vae", inputs=("image",), example_shape=(1, 28, 28),
                description="VAE: MLP encoder → N(μ, σ²) → sampled z → MLP decoder (Bernoulli pixels)")
class VAE(nn.Module):
    """flatten → Linear → ReLU → (μ, log σ²);  z → Linear → ReLU → Linear → pixel logits."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (1, 28, 28)
        latent: int = 2  # 2 gives the manifold picture
        hidden: int = 512

        def __post_init__(self) -> None:
            self.input_shape = check_code_config(self.input_shape, self.latent, self.hidden)

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        d = math.prod(cfg.input_shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, cfg.hidden), nn.ReLU())
        self.to_mu = nn.Linear(cfg.hidden, cfg.latent)
        self.to_logvar = nn.Linear(cfg.hidden, cfg.latent)
        self.decoder = nn.Sequential(nn.Linear(cfg.latent, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, d))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)  # (B, hidden)
        return self.to_mu(h), self.to_logvar(h)  # (B, latent) each

    def decode_logits(self, z: Tensor) -> Tensor:
        return self.decoder(z).view(-1, *self.cfg.input_shape)  # (B, C, H, W)

    def decode(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.decode_logits(z))  # (B, C, H, W) in [0, 1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x)
        return self.decode_logits(reparameterize(mu, logvar)), mu, logvar  # logits (B, C, H, W), (B, latent) ×2
