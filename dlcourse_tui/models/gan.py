"""A small DCGAN (Goodfellow et al. 2014, "Generative Adversarial Nets"; Radford et al.
2016, "Unsupervised Representation Learning with Deep Convolutional GANs").

A generator G maps noise z ~ N(0, I) to an image; a discriminator D maps an image to
one logit, "real" vs "generated". They play the min-max game

    min_G max_D  E_x[log D(x)] + E_z[log(1 − D(G(z)))]

(tasks/gan.py updates D, then G, with the non-saturating loss −log D(G(z)) for G).
Images are in [−1, 1]: G ends in tanh.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlcourse_tui.models.registry import register_model


class Generator(nn.Module):
    """z → Linear → (2c, H/4, W/4) → up-conv → (c, H/2, W/2) → up-conv → (C, H, W), tanh."""

    def __init__(self, latent: int, channels: int, out_channels: int, size: int) -> None:
        super().__init__()
        self.c, self.s = channels, size // 4
        self.fc = nn.Sequential(nn.Linear(latent, 2 * channels * self.s * self.s), nn.BatchNorm1d(2 * channels * self.s * self.s),
                                nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.ConvTranspose2d(channels, out_channels, 4, stride=2, padding=1), nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(-1, 2 * self.c, self.s, self.s)  # (B, 2c, H/4, W/4)
        return self.net(h)  # (B, C, H, W) in [−1, 1]


def minibatch_std(h: Tensor) -> Tensor:
    """Append one channel holding how much the batch varies (Karras et al. 2018, ProGAN):
    the std over the batch, averaged over features and positions. A batch of near-copies
    (mode collapse) then looks different from a batch of real images, and D can tell.
    Written out rather than h.std(0), which is twice as slow on a CPU; the 1e-8 keeps the
    gradient finite for a batch of exact copies (as in ProGAN)."""
    s = (h - h.mean(0)).pow(2).mean(0).add(1e-8).sqrt().mean()  # () average spread across the batch
    return torch.cat([h, s.expand(h.shape[0], 1, *h.shape[2:])], dim=1)  # (B, C + 1, H, W)


def pack(x: Tensor, m: int) -> Tensor:
    """PacGAN (Lin et al. 2018): m images side by side in the channels, so D judges m
    samples jointly. m real digits are m different digits; m of a collapsed G's samples
    look alike, which D can punish. (B, C, H, W) → (B // m, m·C, H, W); a remainder of
    fewer than m images is left out."""
    n = x.shape[0] // m * m
    if n == 0:
        raise ValueError(f"a batch of {x.shape[0]} images cannot fill one pack of {m}")
    return x[:n].reshape(n // m, m * x.shape[1], *x.shape[2:])  # consecutive images share a pack


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016, "Improved Techniques for Training GANs").

    Each sample's features f_i (F,) are projected to K rows of D numbers, M_i = f_i T
    (K, D), and for every row k the sample gets the feature

        o_i,k = mean over j ≠ i of exp(−‖M_i,k − M_j,k‖₁)

    "how many others in this batch look like me", as D learns to measure likeness. In a
    batch of real digits about a tenth of the others are the same digit; if G draws too
    many 0s, each of its 0s has too many look-alikes, and D can call them fake one by one.
    That gives G a gradient towards the digits it draws too rarely: this is what keeps all
    ten classes (minibatch_std's one number per batch says the batch is too uniform, not
    which samples are too common). A mean, not the paper's sum, so that a batch of 1000
    (evaluation) and of 16 (training) give features on the same scale."""

    def __init__(self, in_features: int, kernels: int, dim: int = 4) -> None:
        super().__init__()
        self.kernels, self.dim = kernels, dim
        self.T = nn.Linear(in_features, kernels * dim, bias=False)

    def forward(self, f: Tensor) -> Tensor:
        n = f.shape[0]
        if n < 2:
            raise ValueError("minibatch discrimination compares samples: it needs a batch of at least 2")
        m = self.T(f).view(n, self.kernels, self.dim)  # (N, K, D)
        dist = (m[:, None] - m[None]).abs().sum(-1)  # (N, N, K) L1 distance of every pair, per kernel
        o = (torch.exp(-dist).sum(1) - 1) / (n - 1)  # (N, K); exp(0) = 1 is the sample itself
        return torch.cat([f, o], dim=1)  # (N, F + K)


class Discriminator(nn.Module):
    """[pack m] → (m·C, H, W) → conv s2 → (c, H/2, W/2) → [batch spread] → conv s2 → (2c, H/4, W/4)
    → flatten → [minibatch discrimination] → Linear → 1 logit per pack of m images."""

    def __init__(self, channels: int, in_channels: int, size: int, batch_std: bool = False, pack: int = 1,
                 mbd_kernels: int = 0) -> None:
        super().__init__()
        s = size // 4
        self.batch_std, self.pack = batch_std, pack
        self.body1 = nn.Sequential(nn.Conv2d(pack * in_channels, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2))
        self.body2 = nn.Sequential(
            nn.Conv2d(channels + int(batch_std), 2 * channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Flatten(),
        )
        features = 2 * channels * s * s
        self.mbd = MinibatchDiscrimination(features, mbd_kernels) if mbd_kernels > 0 else None
        self.head = nn.Linear(features + mbd_kernels, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.pack > 1:
            x = pack(x, self.pack)  # (B, C, H, W) -> (B/m, m·C, H, W)
        h = self.body1(x)  # (B/m, c, H/2, W/2)
        f = self.body2(minibatch_std(h) if self.batch_std else h)  # (B/m, 2c·H/4·W/4)
        if self.mbd is not None:
            f = self.mbd(f)  # (B/m, F + K)
        return self.head(f)  # (B/m, 1) logit of "real"


@register_model("dcgan", task="gan", inputs=("image",), example_shape=(1, 28, 28),
                description="DCGAN: up-convolution generator and convolutional discriminator")
class DCGAN(nn.Module):
    """Holds G (`generator`) and D (`discriminator`); forward(z) = D(G(z))."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (1, 28, 28)
        latent: int = 64  # size of z
        g_channels: int = 64
        d_channels: int = 64
        batch_std: bool = False  # give D the batch's spread as a feature (against mode collapse)
        pack: int = 1  # D judges packs of this many images at once (PacGAN; 1: one image at a time)
        mbd_kernels: int = 0  # minibatch-discrimination features in D (0: none)

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            if len(self.input_shape) != 3 or self.input_shape[1] % 4 or self.input_shape[2] % 4:
                raise ValueError(f"a DCGAN here takes images (C, H, W) with H, W multiples of 4, not {self.input_shape}")
            if min(self.latent, self.g_channels, self.d_channels, self.pack) < 1 or self.mbd_kernels < 0:
                raise ValueError("latent, g_channels, d_channels and pack need at least 1 each, mbd_kernels at least 0")

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        c, size = cfg.input_shape[0], cfg.input_shape[1]
        self.generator = Generator(cfg.latent, cfg.g_channels, c, size)
        self.discriminator = Discriminator(cfg.d_channels, c, size, cfg.batch_std, cfg.pack, cfg.mbd_kernels)

    def forward(self, z: Tensor) -> Tensor:
        return self.discriminator(self.generator(z))  # (B, latent) -> (B / pack, 1)
