"""CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision"): an image encoder and a text encoder trained to agree, nothing else.

A batch of N image-caption pairs gives N image embeddings u_i and N text embeddings v_j, each
projected to a shared space and normalised to unit length; their cosine similarities, times a
learned scale s = exp(t) (t initialised to log(1/0.07), s clamped at 100), are an N × N matrix
of logits whose diagonal holds the true pairs. The loss is symmetric InfoNCE: cross-entropy of
each row (an image choosing its caption among the batch's) and of each column (a caption
choosing its image), averaged:

    L = ½ [ CE(s · U Vᵀ, diag) + CE(s · V Uᵀ, diag) ]

The image encoder here is small and convolutional where it matters: the hybrid stem of
models/caption.py (k stages of 3×3 convolution, BatchNorm, ReLU and 2×2 max-pool, 16 · 2^i
channels, then a 1×1 convolution to D_img) down to a grid of tokens (2×2 for 32×32 images and
k = 4), 2-D sine-cosine positions, transformer blocks (models/transformer.py), mean-pooled.
The text encoder embeds the caption's word ids (<bos> words <eos>, <pad> after), adds
sinusoidal positions, runs transformer blocks that ignore the padding, and pools (the mean over
real tokens, or the <eos> row as CLIP does), then projects. `encode_image_tokens` gives the
image's token grid before pooling, for the BLIP-2 bridge lesson, which builds on this model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.models.attention import padding_mask
from dlcourse_tui.models.caption import conv_stem
from dlcourse_tui.models.registry import register_model
from dlcourse_tui.models.transformer import TransformerConfig, TransformerEncoder, sinusoidal_positions
from dlcourse_tui.models.vit import sincos_2d

PAD_ID, EOS_ID = 0, 2  # as in data/vocab.py
POOLS = ("mean", "eos")


def clip_loss(image: Tensor, text: Tensor, scale: Tensor | float) -> Tensor:
    """Symmetric InfoNCE: unit embeddings image (N, E) and text (N, E) of N true pairs, row i
    with row i, and the logit scale s → ½ (CE(s U Vᵀ, i) + CE(s V Uᵀ, i))."""
    logits = scale * image @ text.T  # (N, N): image i against caption j
    target = torch.arange(len(image), device=image.device)  # (N,) the diagonal
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@register_model("clip", task="contrastive", inputs=("image", "tokens"), example_shape=(3, 32, 32),
                description="CLIP: a conv-stem image encoder and a transformer text encoder, symmetric InfoNCE "
                            "with a learned temperature; zero-shot classification by prompts")
class CLIP(nn.Module):
    """Images → CNN stem → transformer blocks → mean → projection; words → transformer → pool → projection."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (3, 32, 32)  # only the channels matter: the encoders take any size
        num_classes: int = 44  # the vocabulary's size, <pad> <bos> <eos> included
        stem_stages: int = 4  # 3×3 conv + max-pool stages: 32×32 images → a 2×2 grid of tokens
        image_width: int = 64  # D_img: width of the image tokens
        image_layers: int = 1  # transformer blocks over the image tokens (0: the CNN alone)
        text_width: int = 64
        text_layers: int = 2
        heads: int = 4
        mlp_ratio: float = 2.0
        embed_dim: int = 64  # E: the shared space
        pool: str = "mean"  # the text's summary: "mean" over real tokens, or the "eos" row (CLIP's)
        max_length: int = 40  # the longest token sequence the text encoder reads (positions)
        temperature: float = 0.07  # the initial τ; the learned scale exp(t) starts at 1/τ
        max_scale: float = 100.0  # the scale is clamped here (CLIP's 100)
        dropout: float = 0.0
        use_sdpa: bool = False

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            if self.num_classes < 4:
                raise ValueError(f"num_classes={self.num_classes}: a vocabulary needs the 3 special tokens and a word.")
            if not 1 <= self.stem_stages <= 5:
                raise ValueError(f"stem_stages={self.stem_stages}: use 1 to 5 halvings of the image.")
            if self.pool not in POOLS:
                raise ValueError(f"pool={self.pool!r}: use 'mean' (over the words) or 'eos' (the <eos> row).")
            if self.image_layers < 0 or self.text_layers < 1:
                raise ValueError("image_layers must be >= 0 and text_layers >= 1.")
            if not 0 < self.temperature <= 1 or self.max_scale < 1:
                raise ValueError(f"temperature={self.temperature} must be in (0, 1] and max_scale={self.max_scale} >= 1.")
            if self.embed_dim < 2 or self.max_length < 2:
                raise ValueError("embed_dim and max_length must be at least 2.")
            self.stack(self.text_width)
            if self.image_layers:
                self.stack(self.image_width, self.image_layers)

        def stack(self, width: int, layers: int | None = None) -> TransformerConfig:
            return TransformerConfig(d_model=width, heads=self.heads, layers=layers or self.text_layers,
                                     mlp_ratio=self.mlp_ratio, dropout=self.dropout, use_sdpa=self.use_sdpa)

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        di, dt = cfg.image_width, cfg.text_width
        self.stem = conv_stem(cfg.input_shape[0], di, 2 ** cfg.stem_stages)  # (B, C, H, W) → (B, D_img, H/2^k, W/2^k)
        self.image_norm = nn.LayerNorm(di)
        self.image_blocks = TransformerEncoder(cfg.stack(di, cfg.image_layers)) if cfg.image_layers else None
        self.image_proj = nn.Linear(di, cfg.embed_dim, bias=False)
        self.embed = nn.Embedding(cfg.num_classes, dt)
        self.register_buffer("positions", sinusoidal_positions(cfg.max_length, dt), persistent=False)  # (L, dt)
        self.text_blocks = TransformerEncoder(cfg.stack(dt))
        self.text_proj = nn.Linear(dt, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.temperature)))  # t; s = exp(t)

    @property
    def image_dim(self) -> int:
        """D_img: the width of encode_image_tokens' rows."""
        return self.cfg.image_width

    def scale(self) -> Tensor:
        """The logit scale s = exp(t), clamped at max_scale (100)."""
        return self.logit_scale.exp().clamp(max=self.cfg.max_scale)

    # -- images ----------------------------------------------------------------------------
    def encode_image_tokens(self, images: Tensor) -> Tensor:
        """Standardised images (B, C, H, W) → token features (B, T, D_img) before pooling, one per
        cell of the CNN's output grid (T = H/2^k · W/2^k), row by row."""
        grid = self.stem(images)  # (B, D_img, gh, gw)
        gh, gw = grid.shape[-2:]
        z = self.image_norm(grid.flatten(2).transpose(1, 2))  # (B, T, D_img)
        if self.image_blocks is None:
            return z
        z = z + sincos_2d(gh, gw, z.shape[-1]).to(z)  # (B, T, D_img): where each token is
        return self.image_blocks(z)[0]  # (B, T, D_img)

    def encode_image(self, images: Tensor) -> Tensor:
        """Standardised images (B, C, H, W) → unit embeddings (B, E)."""
        return F.normalize(self.image_proj(self.encode_image_tokens(images).mean(dim=1)), dim=-1)  # (B, E)

    # -- text ------------------------------------------------------------------------------
    def encode_text(self, tokens: Tensor) -> Tensor:
        """Word ids (B, L) int64 (<bos> words <eos>, <pad> = 0 after) → unit embeddings (B, E)."""
        L = tokens.shape[1]
        if L > self.positions.shape[0]:
            raise ValueError(f"texts of {L} tokens are longer than this model's {self.positions.shape[0]} positions.")
        real = tokens != PAD_ID  # (B, L)
        x = self.embed(tokens) + self.positions[:L]  # (B, L, dt)
        h, _ = self.text_blocks(x, padding_mask(real))  # (B, L, dt), padding never attended to
        if self.cfg.pool == "eos":
            last = (real.long().sum(dim=1) - 1).clamp_min(0)  # (B,) the last real token: <eos>
            pooled = h[torch.arange(len(h), device=h.device), last]  # (B, dt)
        else:
            w = real.to(h.dtype)[..., None]  # (B, L, 1)
            pooled = (h * w).sum(dim=1) / w.sum(dim=1).clamp_min(1)  # (B, dt)
        return F.normalize(self.text_proj(pooled), dim=-1)  # (B, E)

    # -- both ------------------------------------------------------------------------------
    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        """The batch's logits s · U Vᵀ (B, B): image i (rows) against caption j (columns)."""
        return self.scale() * self.encode_image(images) @ self.encode_text(tokens).T  # (B, B)

    def loss(self, images: Tensor, tokens: Tensor) -> Tensor:
        """Symmetric InfoNCE of a batch of true pairs."""
        return clip_loss(self.encode_image(images), self.encode_text(tokens), self.scale())


def clip_from_settings(settings: dict, vocab_size: int) -> CLIP:
    """The CLIP a run trained, rebuilt from its config["model"] settings (its "name" and any key
    this model does not take are ignored) for a vocabulary of vocab_size words."""
    fields = set(CLIP.Config.__dataclass_fields__) - {"num_classes"}
    kwargs = {k: v for k, v in settings.items() if k in fields}
    return CLIP(CLIP.Config(**kwargs, num_classes=vocab_size))
