"""The networks of the self-supervised lesson (chapter 2): one encoder for every method, and
the small heads the methods put on top of it.

- `ssl_cnn`: the chapter-2 CNN (models/cnn.py) as an encoder. h = f(x) is its flattened last
  volume, what its fully connected head reads; pretraining never uses that head, the
  supervised baselines do (so every row of the lesson's table has the same backbone).
- `MLPHead`: Linear → BatchNorm → ReLU → Linear, the projection head g of SimCLR
  (z = g(h); Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
  Representations", §2.1), BYOL's projector and predictor q (Grill et al. 2020, "Bootstrap
  Your Own Latent"), Barlow Twins' projector (Zbontar et al. 2021) and the pretext
  classifiers of RotNet and Jigsaw.
- `JigsawHead`: the context-free network's top (Noroozi & Favaro 2016, "Unsupervised
  Learning of Visual Representations by Solving Jigsaw Puzzles"): every tile goes through the
  same encoder, the tiles' features are concatenated in the order they were shown, and an
  MLP names the permutation.
"""

from __future__ import annotations

from torch import Tensor, nn

from dlcourse_tui.models.cnn import CNN
from dlcourse_tui.models.registry import register_model


@register_model("ssl_cnn", task="ssl", inputs=("image",), example_shape=(3, 32, 32),
                description="the chapter-2 CNN as an encoder: h = flattened last volume; its head serves the supervised baselines")
class SSLEncoder(CNN):
    """The CNN unchanged (its Config, blocks and head); features(x) is h."""

    @property
    def feature_dim(self) -> int:
        """The width of h for the configured input: C_last · H_last · W_last."""
        c, h, w = self.cfg.block_shapes()[-1]
        return c * h * w


class MLPHead(nn.Module):
    """g(h) = W₂ · ReLU(BN(W₁ · h)): (B, d_in) -> (B, d_out)."""

    def __init__(self, d_in: int, hidden: int, d_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, d_out))

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)  # (B, d_out)


class JigsawHead(nn.Module):
    """T tile features in the order shown, concatenated, then an MLP over the permutations:
    (B, T, d) -> (B, n_permutations)."""

    def __init__(self, tiles: int, d_tile: int, hidden: int, n_permutations: int) -> None:
        super().__init__()
        self.mlp = MLPHead(tiles * d_tile, hidden, n_permutations)

    def forward(self, tile_features: Tensor) -> Tensor:
        return self.mlp(tile_features.flatten(1))  # (B, T·d) -> (B, P)
