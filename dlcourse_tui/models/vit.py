"""The Vision Transformer (Dosovitskiy et al. 2021, "An image is worth 16×16 words").

Cut the image into P = (H/p)·(W/p) patches of p×p pixels, flatten each (C·p·p numbers) and
map it linearly to d dimensions; put a trainable [CLS] token in front and add a trainable
position embedding to each of the P + 1 rows; run the transformer encoder; classify from
the [CLS] row of its output:

    z_0 = [x_cls; x_1 E; x_2 E; …; x_P E] + E_pos,   E ∈ R^{(C·p·p) × d}, E_pos ∈ R^{(P+1) × d}
    z_L = Encoder(z_0),   y = Linear(LayerNorm(z_L[0]))

Nothing in it knows that patches next to each other are neighbours: the position
embeddings have to learn it, which is why a ViT needs far more data, or steps, than a CNN
of the same size. Two things here give it a head start on a small budget, both trainable
and both starting points only: the position embeddings start as 2-D sines and cosines
(half the dimensions for the row, half for the column, as in MAE), and with `locality`
each head adds a learned bias to its attention scores that depends on how far apart two
patches are, b_h(Δrow, Δcol), starting at −(Δrow² + Δcol²) / 2σ_h² (σ from 1 to 3 patches
across the heads): every head starts out looking mostly at its neighbourhood, like a
convolution, and learns how far to look (a soft convolutional prior, in the spirit of
ConViT, d'Ascoli et al. 2021, and of Swin's relative position bias). The [CLS] row and
column get no bias. A LayerNorm follows the linear patch embedding (as in vit-pytorch).
With `shifted_patches` the patches are cut from the image stacked with four copies of itself
shifted diagonally by p/2 pixels (shifted patch tokenization, Lee et al. 2021, "Vision
Transformer for small-size datasets"): each token's linear embedding then also sees the
pixels around its patch, so an edge that falls on a patch border is still seen whole by one
token. The embedding stays linear, E ∈ R^{(5·C·p·p) × d}.

What the [CLS] token looks at is the first row of each layer's attention matrix, A[0, 1:],
P scores that reshape to the (H/p)×(W/p) patch grid; attention rollout (Abnar & Zuidema
2020) follows the attention through the layers instead: R_l = Ā_l R_{l−1} with
Ā_l = ½ (mean over heads of A_l) + ½ I, rows renormalised (the ½ I stands for the
residual connection).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.models.registry import register_model
from dlcourse_tui.models.transformer import TransformerBlock, TransformerConfig, TransformerEncoder, sinusoidal_positions


def patchify(x: Tensor, p: int) -> Tensor:
    """(B, C, H, W) → (B, P, C·p·p): non-overlapping p×p patches, row by row, each flattened."""
    B, C, H, W = x.shape
    x = x.view(B, C, H // p, p, W // p, p)  # (B, C, gh, p, gw, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), C * p * p)  # (B, P, C·p·p)


@register_model("vit", task="classify", inputs=("image",), example_shape=(3, 32, 32),
                description="Vision Transformer: p×p patches, linear embedding, [CLS] token, learned positions")
class ViT(nn.Module):
    """patches → Linear → [CLS] + positions → transformer encoder → LayerNorm → Linear on [CLS]."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (3, 32, 32)
        num_classes: int = 10
        patch_size: int = 4  # p: 32×32 images give (32/4)² = 64 patches
        d_model: int = 32
        heads: int = 2
        layers: int = 4
        mlp_ratio: float = 4.0
        dropout: float = 0.0
        use_sdpa: bool = False  # the fused kernel (no attention weights; pictures take the hand-written path)
        locality: bool = True  # a learned bias on distance between patches, starting local
        shifted_patches: bool = False  # each patch also sees its neighbours, shifted by p/2 (Lee et al. 2021)

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            if len(self.input_shape) != 3:
                raise ValueError(f"a ViT takes images (C, H, W), not inputs of shape {self.input_shape}.")
            _, h, w = self.input_shape
            p = self.patch_size
            if p < 1 or h % p or w % p:
                fits = [d for d in range(1, min(h, w) + 1) if h % d == 0 and w % d == 0]
                raise ValueError(f"patch_size={p} does not divide the {h}×{w} image into whole patches; "
                                 f"pick one of {', '.join(map(str, fits))}.")
            self.stack()

        @property
        def grid(self) -> tuple[int, int]:
            """(H/p, W/p): the patch grid."""
            return self.input_shape[1] // self.patch_size, self.input_shape[2] // self.patch_size

        def stack(self) -> TransformerConfig:
            return TransformerConfig(d_model=self.d_model, heads=self.heads, layers=self.layers,
                                     mlp_ratio=self.mlp_ratio, dropout=self.dropout, use_sdpa=self.use_sdpa)

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.input_shape[0]
        gh, gw = cfg.grid
        p, d = cfg.patch_size, cfg.d_model
        views = 5 if cfg.shifted_patches else 1
        self.patch_embed = nn.Linear(views * c * p * p, d)  # E: one patch's C·p·p pixels (per view) → d
        self.patch_norm = nn.LayerNorm(d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))  # x_cls, trainable
        pos = torch.cat([torch.randn(1, d) * 0.02, sincos_2d(gh, gw, d)])  # (P + 1, d): [CLS]'s row, then the grid's
        self.pos_embed = nn.Parameter(pos[None])  # E_pos, trainable
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.locality:
            rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
            dr = rows.flatten()[:, None] - rows.flatten()[None, :]  # (P, P) Δrow between patches i and j
            dc = cols.flatten()[:, None] - cols.flatten()[None, :]  # (P, P) Δcol
            self.register_buffer("rel_index", (dr + gh - 1) * (2 * gw - 1) + (dc + gw - 1), persistent=False)  # (P, P)
            ur = torch.arange(1 - gh, gh, dtype=torch.float32)[:, None]  # (2gh − 1, 1) every Δrow
            uc = torch.arange(1 - gw, gw, dtype=torch.float32)[None, :]  # (1, 2gw − 1) every Δcol
            sigma = torch.linspace(1.0, 3.0, cfg.heads)[:, None, None]  # (h, 1, 1) in patches
            self.rel_bias = nn.Parameter(-(ur ** 2 + uc ** 2)[None] / (2 * sigma ** 2))  # (h, 2gh − 1, 2gw − 1)
        self.encoder = TransformerEncoder(cfg.stack())
        self.head = nn.Linear(d, cfg.num_classes)

    def tokens(self, x: Tensor) -> Tensor:
        """z_0: (B, C, H, W) → (B, P + 1, d), [CLS] first, positions added."""
        z = self.patch_norm(self.embed_patches(x))  # (B, P, d)
        cls = self.cls_token.expand(z.shape[0], -1, -1)  # (B, 1, d)
        return self.drop(torch.cat([cls, z], dim=1) + self.pos_embed)  # (B, P + 1, d)

    def embed_patches(self, x: Tensor) -> Tensor:
        """x_i E for every patch: (B, C, H, W) → (B, P, d), row by row. Computed as one strided
        convolution whose kernel is E laid out on the pixels it reads (the same numbers as
        patchify, shifted_views and the Linear, without copying every patch out, five times)."""
        p, s = self.cfg.patch_size, self.shift
        if type(self.patch_embed) is not nn.Linear:  # replaced (a wrapper, a stem): patch by patch, as written
            if self.cfg.shifted_patches:
                x = shifted_views(x, s)  # (B, 5C, H, W)
            return self.patch_embed(patchify(x, p))  # (B, P, d)
        kernel = patch_kernel(self.patch_embed.weight, x.shape[1], p, s if self.cfg.shifted_patches else 0)
        z = F.conv2d(x, kernel, self.patch_embed.bias, stride=p, padding=s if self.cfg.shifted_patches else 0)
        return z.flatten(2).transpose(1, 2)  # (B, d, H/p, W/p) → (B, P, d)

    @property
    def shift(self) -> int:
        """s: how far the shifted views move the image, p/2 pixels (at least 1)."""
        return max(1, self.cfg.patch_size // 2)

    def attention_bias(self) -> Tensor | None:
        """The locality bias added to every layer's scores, (1, h, P + 1, P + 1), 0 on [CLS]'s row and column."""
        if not self.cfg.locality:
            return None
        b = self.rel_bias.flatten(1)[:, self.rel_index]  # (h, P, P): b_h(Δrow, Δcol) for every pair
        return F.pad(b, (1, 0, 1, 0))[None]  # (1, h, P + 1, P + 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, classes) from the [CLS] row. Only that row is classified, so the last block
        computes it alone (one query in its attention, one token through its MLP): the same
        numbers as encoder(...)[:, 0], with less work."""
        z, bias = self.tokens(x), self.attention_bias()  # (B, P + 1, d), (1, h, P + 1, P + 1) or None
        *blocks, last = self.encoder.blocks
        for block in blocks:
            z, _ = block(z, mask=bias)  # (B, P + 1, d)
        cls = cls_row(last, z, None if bias is None else bias[:, :, :1])  # (B, 1, d)
        return self.head(self.encoder.norm(cls)[:, 0])  # (B, classes)

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """Every layer's attention weights: [(B, heads, P + 1, P + 1), ...]."""
        _, maps = self.encoder(self.tokens(x), self.attention_bias(), need_weights=True)
        return [m["self"] for m in maps]

    def cls_attention(self, x: Tensor, *, rollout: bool = False) -> Tensor:
        """What [CLS] attends to, on the patch grid: A[0, 1:] of every layer and head,
        (B, layers, heads, H/p, W/p); with rollout, the rolled-out attention up to each
        layer, (B, layers, 1, H/p, W/p). Each map sums to at most 1 (the rest is on [CLS])."""
        gh, gw = self.cfg.grid
        maps = self.attention_maps(x)  # L × (B, h, P + 1, P + 1)
        if rollout:
            maps = [r[:, None] for r in attention_rollout(maps)]  # L × (B, 1, P + 1, P + 1)
        rows = torch.stack([a[:, :, 0, 1:] for a in maps], dim=1)  # (B, L, h, P): first row, first element dropped
        return rows.reshape(*rows.shape[:3], gh, gw)  # (B, L, h, gh, gw)


def shifted_views(x: Tensor, s: int) -> Tensor:
    """(B, C, H, W) → (B, 5C, H, W): the image and its four diagonal shifts by s pixels (zeros
    shifted in), so that a patch cut from them also holds the pixels around it."""
    H, W = x.shape[-2:]
    pad = F.pad(x, (s, s, s, s))  # (B, C, H + 2s, W + 2s)
    shifts = [pad[..., s + dy:s + dy + H, s + dx:s + dx + W] for dy, dx in ((-s, -s), (-s, s), (s, -s), (s, s))]
    return torch.cat([x, *shifts], dim=1)  # (B, 5C, H, W)


def cls_row(block: TransformerBlock, z: Tensor, mask: Tensor | None) -> Tensor:
    """What `block` gives at row 0 ([CLS]) of z (B, T, d), computing no other row: [CLS] queries
    every row's keys and values, then goes through the MLP alone. mask: (…, 1, T) or None."""

    def attend(q: Tensor) -> Tensor:
        context = block.norm1(z) if block.norm_first else z  # (B, T, d): the keys' rows, as the block sees them
        return block.drop(block.self_attn(q, context, mask=mask)[0])  # (B, 1, d)

    x = block._sublayer(z[:, :1], block.norm1, attend, block.adapter_attn)  # (B, 1, d)
    return block._sublayer(x, block.norm2, block.mlp, block.adapter_mlp)  # (B, 1, d)


def patch_kernel(weight: Tensor, c: int, p: int, s: int) -> Tensor:
    """E (d, V·C·p·p), laid out as a convolution kernel (d, C, p + 2s, p + 2s): view 0 is the
    patch itself, at the centre; with s > 0 views 1–4 are the diagonal shifts of shifted_views,
    each p×p block put where its pixels lie around the patch (overlaps add up)."""
    d = weight.shape[0]
    if s == 0:
        return weight.view(d, c, p, p)  # (d, C, p, p): patchify's order is channel, row, column
    w = weight.view(d, 5, c, p, p)  # (d, views, C, p, p)
    kernel = w.new_zeros(d, c, p + 2 * s, p + 2 * s)
    for v, (dy, dx) in enumerate(((0, 0), (-s, -s), (-s, s), (s, -s), (s, s))):
        kernel[:, :, s + dy:s + dy + p, s + dx:s + dx + p] += w[:, v]
    return kernel  # (d, C, p + 2s, p + 2s)


def attention_rollout(maps: list[Tensor]) -> list[Tensor]:
    """Abnar & Zuidema (2020): R_l = Ā_l R_{l−1}, Ā = ½ mean_heads(A) + ½ I, rows renormalised.
    maps: L × (B, h, T, T) → L × (B, T, T), the rollout up to each layer."""
    out, r = [], None
    for a in maps:
        a = a.mean(dim=1)  # (B, T, T)
        a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        a = a / a.sum(dim=-1, keepdim=True)
        r = a if r is None else a @ r  # (B, T, T)
        out.append(r)
    return out


def sincos_2d(gh: int, gw: int, d: int) -> Tensor:
    """2-D sine-cosine position codes (gh·gw, d), row by row: half the dimensions encode the
    patch's row, half its column, each as in sinusoidal_positions."""
    half = d // 2
    rows = sinusoidal_positions(gh, half)  # (gh, d/2)
    cols = sinusoidal_positions(gw, d - half)  # (gw, d/2)
    grid = torch.cat([rows[:, None].expand(gh, gw, half), cols[None].expand(gh, gw, d - half)], dim=-1)  # (gh, gw, d)
    return grid.reshape(gh * gw, d)
