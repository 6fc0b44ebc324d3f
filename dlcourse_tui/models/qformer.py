"""A BLIP-2-style bridge (Li et al. 2023, "BLIP-2: Bootstrapping Language-Image Pre-training
with Frozen Image Encoders and Large Language Models"): a small Querying Transformer between a
frozen image encoder and a frozen language model.

The Q-Former holds Q learned query vectors. In every block the queries and the text share
one self-attention (a mask says who may see whom), the queries alone cross-attend to the
frozen image features, and queries and text have MLPs of their own. Stage 1 trains it with
three objectives, each with its own self-attention mask (True: may attend):

    ITC  uni-modal:           queries ↔ queries, text ↔ text          (the two sides apart)
    ITM  bi-directional:      every row sees every row               (queries read the text)
    ITG  multi-modal causal:  queries ↔ queries; text → queries and earlier text

ITC's similarity of image i and text j is the best of its queries: s(i, j) = max_q z_iq · t_j
(z the queries' outputs, t the text's <bos> row, both projected and normalised).
Stage 2 turns the queries' outputs into a soft prompt for the language model, h = W Z + b
(B, Q, d_lm), put before the caption's word embeddings, and trains the Q-Former and W with
the language model's own loss while the language model stays frozen:

    p(w_t | w_<t, image) = LM([W Z; E[w_<t]])

The language model (`CaptionLM`) is decoder-only: word embeddings plus sinusoidal positions
(not scaled by √d: a prefix read before the words must not be drowned by them), chapter 4's
TransformerEncoder with the causal mask, and a linear layer to next-word logits. It may read
a prefix first, vectors without positions: in pretraining a caption's bag of words (their
embeddings), in stage 2 the soft prompt. The image encoder is any module with
`encode_image_tokens(images) -> (B, T, D)` (the CLIP lesson's); `ViTTokens`, chapter 4's ViT
without its head, stands in for it when there is no CLIP run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.models.attention import MultiHeadAttention, check_heads, padding_mask
from dlcourse_tui.models.registry import register_model
from dlcourse_tui.models.transformer import MLP, TransformerConfig, TransformerEncoder, sinusoidal_positions
from dlcourse_tui.models.vit import ViT

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2  # as in data/vocab.py
MASKS = ("itc", "itm", "itg")


class ImageEncoder(Protocol):
    """What the bridge needs of a frozen image encoder."""

    image_dim: int

    def encode_image_tokens(self, images: Tensor) -> Tensor:
        """Standardised images (B, C, H, W) → features (B, T, image_dim)."""


class ViTTokens(nn.Module):
    """Chapter 4's ViT without its head, every output row: the stand-in image encoder."""

    def __init__(self, cfg: ViT.Config) -> None:
        super().__init__()
        self.vit = ViT(cfg)
        self.vit.head = nn.Identity()
        self.image_dim = cfg.d_model

    def encode_image_tokens(self, images: Tensor) -> Tensor:
        z, _ = self.vit.encoder(self.vit.tokens(images), self.vit.attention_bias())  # (B, 1 + P, d)
        return z


# ---------------------------------------------------------------------------- the language model


class CaptionLM(nn.Module):
    """A decoder-only language model: [prefix; E[w] + PE] → causal transformer → next-word logits."""

    @dataclass
    class Config:
        vocab_size: int = 42
        d_model: int = 64
        heads: int = 4
        layers: int = 2
        mlp_ratio: float = 2.0
        max_length: int = 40  # the longest word sequence it reads (positions)

        def stack(self) -> TransformerConfig:
            return TransformerConfig(d_model=self.d_model, heads=self.heads, layers=self.layers,
                                     mlp_ratio=self.mlp_ratio)

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.register_buffer("positions", sinusoidal_positions(cfg.max_length, cfg.d_model), persistent=False)
        self.stack = TransformerEncoder(cfg.stack())
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def forward(self, ids: Tensor, prefix: Tensor | None = None, prefix_keep: Tensor | None = None) -> Tensor:
        """ids (B, T) (<bos> first), prefix (B, K, d) vectors read before them (a bag of words'
        embeddings, or a soft prompt) or None, prefix_keep (B, K) bool (False: padding) →
        logits (B, T, V) at the words."""
        T = ids.shape[1]
        if T > self.positions.shape[0]:
            raise ValueError(f"sequences of {T} words are longer than this model's {self.positions.shape[0]} positions.")
        x = self.embed(ids) + self.positions[:T]  # (B, T, d)
        K, mask = 0, None
        if prefix is not None:
            K = prefix.shape[1]
            x = torch.cat([prefix, x], dim=1)  # (B, K + T, d): the prefix has no positions (a set)
            if prefix_keep is not None:
                keep = torch.cat([prefix_keep, torch.ones_like(ids, dtype=torch.bool)], dim=1)  # (B, K + T)
                mask = padding_mask(keep)  # (B, 1, 1, K + T); padding last, so no row is left empty
        y, _ = self.stack(x, mask, causal=True)  # (B, K + T, d)
        return self.head(y[:, K:])  # (B, T, V)

    @torch.no_grad()
    def generate(self, start: Tensor, steps: int, prefix: Tensor | None = None,
                 prefix_keep: Tensor | None = None) -> Tensor:
        """Greedy decoding from start (B, T0) ids: append the most likely word `steps` times
        (<pad> after <eos>), stopping once every row has ended. Returns (B, T0 + ≤ steps)."""
        seq = start
        done = torch.zeros(seq.shape[0], dtype=torch.bool, device=seq.device)  # (B,)
        steps = max(0, min(steps, self.positions.shape[0] - seq.shape[1]))
        for _ in range(steps):
            nxt = self(seq, prefix, prefix_keep)[:, -1].argmax(dim=-1)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, PAD_ID), nxt)
            seq = torch.cat([seq, nxt[:, None]], dim=1)  # (B, t + 1)
            done |= nxt == EOS_ID
            if bool(done.all()):
                break
        return seq


# ---------------------------------------------------------------------------- the Q-Former


def stage1_mask(kind: str, queries: int, text: int, device: torch.device | str | None = None) -> Tensor:
    """The self-attention mask of one stage-1 objective over [queries; text]: (Q + T, Q + T)
    bool, True = the row may attend to the column (module docstring)."""
    Q, T = queries, text
    m = torch.zeros(Q + T, Q + T, dtype=torch.bool, device=device)
    m[:Q, :Q] = True  # queries see queries in every objective
    if kind == "itc":
        m[Q:, Q:] = True  # text sees text only
    elif kind == "itm":
        m[:] = True  # everything sees everything
    elif kind == "itg":
        m[Q:, :Q] = True  # text sees every query …
        m[Q:, Q:] = torch.ones(T, T, dtype=torch.bool, device=device).tril()  # … and the text up to itself
    else:
        raise ValueError(f"mask {kind!r}: one of {', '.join(MASKS)}")
    return m


class QFormerBlock(nn.Module):
    """Shared self-attention over [queries; text], cross-attention to the image for the
    queries only, and an MLP each for queries and text; pre-norm residuals throughout."""

    def __init__(self, d_model: int, heads: int, image_dim: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, heads)
        self.norm_cross = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, heads, context_dim=image_dim)
        d_ff = max(1, round(d_model * mlp_ratio))
        self.norm_q, self.mlp_q = nn.LayerNorm(d_model), MLP(d_model, d_ff)
        self.norm_t, self.mlp_t = nn.LayerNorm(d_model), MLP(d_model, d_ff)

    def forward(self, q: Tensor, t: Tensor, image: Tensor, mask: Tensor | None,
                need_weights: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        """q (B, Q, d), t (B, T, d) (T may be 0), image (B, S, D); mask broadcastable to
        (B, h, Q + T, Q + T). Returns q, t and the cross-attention weights (B, h, Q, S) when asked."""
        Q = q.shape[1]
        x = torch.cat([q, t], dim=1)  # (B, Q + T, d)
        a, _ = self.self_attn(self.norm1(x), mask=mask)
        x = x + a  # (B, Q + T, d)
        q, t = x[:, :Q], x[:, Q:]
        c, w = self.cross_attn(self.norm_cross(q), image, need_weights=need_weights)  # (B, Q, d)
        q = q + c
        q = q + self.mlp_q(self.norm_q(q))  # (B, Q, d)
        t = t + self.mlp_t(self.norm_t(t)) if t.shape[1] else t  # (B, T, d)
        return q, t, w


class QFormer(nn.Module):
    """Learned queries and a text embedding through QFormerBlocks, with the stage-1 heads."""

    def __init__(self, *, vocab_size: int, queries: int, d_model: int, heads: int, layers: int, mlp_ratio: float,
                 image_dim: int, embed_dim: int, max_length: int) -> None:
        super().__init__()
        check_heads(d_model, heads)
        self.queries = nn.Parameter(torch.randn(1, queries, d_model) * 0.02)  # the Q learned queries
        self.embed = nn.Embedding(vocab_size, d_model)
        self.register_buffer("positions", sinusoidal_positions(max_length, d_model), persistent=False)
        self.blocks = nn.ModuleList(QFormerBlock(d_model, heads, image_dim, mlp_ratio) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.d_model = d_model
        # stage 1's heads
        self.itc_image = nn.Linear(d_model, embed_dim)  # queries' outputs → the shared embedding space
        self.itc_text = nn.Linear(d_model, embed_dim)  # the text's <bos> row → the same space
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # 1/τ, learned (CLIP's start)
        self.itm_head = nn.Linear(d_model, 2)  # match / no match, from each query, averaged
        self.itg_head = nn.Linear(d_model, vocab_size)  # next-word logits from the text rows

    def forward(self, image: Tensor, ids: Tensor | None = None, kind: str = "itc",
                need_weights: bool = False) -> tuple[Tensor, Tensor, list[Tensor]]:
        """image (B, S, D) features, ids (B, T) or None (queries alone) → query outputs (B, Q, d),
        text outputs (B, T, d) and, when asked, each block's cross-attention (B, h, Q, S)."""
        B, Q = image.shape[0], self.queries.shape[1]
        q = self.queries.expand(B, -1, -1)  # (B, Q, d)
        if ids is None:
            t, mask = image.new_zeros(B, 0, self.d_model), None
        else:
            T = ids.shape[1]
            t = self.embed(ids) * math.sqrt(self.d_model) + self.positions[:T]  # (B, T, d)
            keep = torch.cat([torch.ones(B, Q, dtype=torch.bool, device=ids.device), ids != PAD_ID], dim=1)  # (B, Q + T)
            mask = stage1_mask(kind, Q, T, ids.device)[None, None] & padding_mask(keep)  # (B, 1, Q + T, Q + T)
        maps = []
        for block in self.blocks:
            q, t, w = block(q, t, image, mask, need_weights)
            if need_weights:
                maps.append(w)
        return self.norm(q), self.norm(t), maps

    def similarity(self, z: Tensor, text: Tensor) -> Tensor:
        """ITC: query outputs z (B_i, Q, d), text outputs (B_t, T, d) → s(i, j) = max_q ẑ_iq · t̂_j,
        times 1/τ: (B_i, B_t), and which query gave each maximum (B_i, B_t)."""
        zi = F.normalize(self.itc_image(z), dim=-1)  # (B_i, Q, E)
        tj = F.normalize(self.itc_text(text[:, 0]), dim=-1)  # (B_t, E): the <bos> row
        per_query = torch.einsum("iqe,je->ijq", zi, tj)  # (B_i, B_t, Q)
        best = per_query.max(dim=-1)
        return best.values * self.log_scale.clamp(max=math.log(100)).exp(), best.indices


@register_model("qformer", task="bridge", inputs=("image", "tokens"), example_shape=(3, 64, 64),
                description="BLIP-2-style Q-Former: learned queries between a frozen image encoder and a frozen "
                            "decoder-only language model (ITC, ITM, ITG; then a soft prompt)")
class QFormerBridge(nn.Module):
    """Frozen image encoder → Q-Former → Linear (soft prompt) → frozen language model."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (3, 64, 64)
        num_classes: int = 42  # the vocabulary's size, <pad> <bos> <eos> included
        queries: int = 8  # the Q-Former's learned queries
        d_model: int = 32  # the Q-Former's width
        heads: int = 4
        layers: int = 2  # Q-Former blocks
        mlp_ratio: float = 2.0
        embed_dim: int = 32  # ITC's shared embedding space
        lm_d_model: int = 64
        lm_heads: int = 4
        lm_layers: int = 2
        max_length: int = 40
        # the stand-in image encoder's sizes (a ViT), used when no encoder is given
        patch_size: int = 8
        encoder_d_model: int = 64
        encoder_heads: int = 4
        encoder_layers: int = 2

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            if self.num_classes < 4:
                raise ValueError(f"num_classes={self.num_classes}: a vocabulary needs the 3 special tokens and a word.")
            if not 1 <= self.queries <= 256:
                raise ValueError(f"queries={self.queries}: give between 1 and 256 learned queries, e.g. 8.")
            if self.embed_dim < 1:
                raise ValueError(f"embed_dim={self.embed_dim}: must be at least 1.")
            check_heads(self.d_model, self.heads)
            self.lm().stack()

        def lm(self) -> CaptionLM.Config:
            return CaptionLM.Config(vocab_size=self.num_classes, d_model=self.lm_d_model, heads=self.lm_heads,
                                    layers=self.lm_layers, mlp_ratio=self.mlp_ratio, max_length=self.max_length)

        def vit(self) -> ViT.Config:
            return ViT.Config(input_shape=self.input_shape, num_classes=1, patch_size=self.patch_size,
                              d_model=self.encoder_d_model, heads=self.encoder_heads, layers=self.encoder_layers,
                              mlp_ratio=self.mlp_ratio)

    def __init__(self, cfg: Config, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder if encoder is not None else ViTTokens(cfg.vit())
        self.qformer = QFormer(vocab_size=cfg.num_classes, queries=cfg.queries, d_model=cfg.d_model, heads=cfg.heads,
                               layers=cfg.layers, mlp_ratio=cfg.mlp_ratio, image_dim=int(self.encoder.image_dim),
                               embed_dim=cfg.embed_dim, max_length=cfg.max_length)
        self.proj = nn.Linear(cfg.d_model, cfg.lm_d_model)  # stage 2: queries' outputs → the LM's input space
        self.lm = CaptionLM(cfg.lm())

    def image_features(self, x: Tensor) -> Tensor:
        """Standardised images (B, C, H, W) → the frozen encoder's features (B, S, D)."""
        return self.encoder.encode_image_tokens(x)

    def soft_prompt(self, features: Tensor) -> Tensor:
        """Image features (B, S, D) → the LM's soft prompt (B, Q, d_lm): the queries alone, projected."""
        z, _, _ = self.qformer(features)  # (B, Q, d)
        return self.proj(z)

    def forward(self, x: Tensor, ids: Tensor) -> Tensor:
        """Stage 2 with teacher forcing: images (B, C, H, W), the shifted caption (B, T) → logits (B, T, V)."""
        return self.lm(ids, self.soft_prompt(self.image_features(x)))

    @torch.no_grad()
    def caption(self, features: Tensor, max_len: int, prefix: Tensor | None = None) -> Tensor:
        """Greedy captions through the soft prompt: (B, ≤ max_len) ids after <bos> (prefix (P,) included)."""
        B = features.shape[0]
        start = torch.full((B, 1), BOS_ID, dtype=torch.long, device=features.device)  # (B, 1)
        if prefix is not None and prefix.numel():
            start = torch.cat([start, prefix.to(features.device)[None].expand(B, -1)], dim=1)  # (B, 1 + P)
        out = self.lm.generate(start, max_len - (start.shape[1] - 1), self.soft_prompt(features))
        return out[:, 1:]
