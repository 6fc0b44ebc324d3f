"""The Transformer's blocks and stacks, written once for chapters 4 and 5 (Vaswani et al. 2017,
"Attention Is All You Need"), and the encoder-decoder model of chapter 4's toy translation.

A block is a sublayer of attention and a position-wise MLP, each wrapped in a residual
connection and a layer norm. The paper normalises after the residual sum (post-norm);
like GPT-2 and ViT, the default here normalises each sublayer's input (pre-norm), which
trains small models without a warm-up:

    pre-norm (default)   x ← x + Sublayer(LayerNorm(x))
    post-norm (paper)    x ← LayerNorm(x + Sublayer(x))

An encoder block has self-attention and the MLP. A decoder block has masked (causal)
self-attention, so position t sees only positions ≤ t, then cross-attention (queries from
the decoder, keys and values from the encoder's output), then the MLP. The model is trained
with teacher forcing: the decoder reads the target shifted right by one (<bos> y_1 … y_{T−1})
and predicts y_1 … y_T at every position at once; the causal mask is what keeps it from
reading the answer it is asked for. At test time it generates greedily, one token at a time.

For chapter 5 the pieces are meant to be reused as they are: every attention is a
`MultiHeadAttention` with separate q/k/v/out nn.Linear projections (LoRA wraps them); each
block has `adapter_attn`, `adapter_cross` and `adapter_mlp` slots, nn.Identity until a
bottleneck adapter is put there (applied to a sublayer's output before the residual sum,
as in Houlsby et al. 2019); the stacks take a `before_block(i, x)` hook that may rewrite the
tokens entering block i (deep visual prompt tuning swaps its prompt tokens there), and
return every layer's attention weights when asked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlcourse_tui.models.attention import MultiHeadAttention, check_heads
from dlcourse_tui.models.registry import register_model

BeforeBlock = Callable[[int, Tensor], Tensor]  # (block index, tokens (B, T, d)) → tokens
AttentionMaps = list[dict[str, Tensor]]  # per layer: {"self": (B, h, T, T), "cross": (B, h, T, S)}


def sinusoidal_positions(length: int, d_model: int) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)): (length, d)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]  # (L, 1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))  # (⌈d/2⌉,)
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: d_model // 2])
    return pe  # (L, d)


class MLP(nn.Module):
    """The position-wise feed-forward sublayer: Linear(d, d_ff) → GELU → Linear(d_ff, d)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))  # (B, T, d) → (B, T, d)


class TransformerBlock(nn.Module):
    """Self-attention, optional cross-attention, MLP; each with a residual and a layer norm."""

    def __init__(self, d_model: int, heads: int, *, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 cross_attention: bool = False, context_dim: int | None = None, norm_first: bool = True,
                 use_sdpa: bool = False) -> None:
        super().__init__()
        check_heads(d_model, heads)
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, heads, dropout=dropout, use_sdpa=use_sdpa)
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attn = (MultiHeadAttention(d_model, heads, dropout=dropout, context_dim=context_dim, use_sdpa=use_sdpa)
                           if cross_attention else None)
        self.norm_cross = nn.LayerNorm(d_model) if cross_attention else None
        self.mlp = MLP(d_model, max(1, round(d_model * mlp_ratio)), dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        # slots for chapter 5's bottleneck adapters: applied to a sublayer's output before its residual sum
        self.adapter_attn: nn.Module = nn.Identity()
        self.adapter_cross: nn.Module = nn.Identity()
        self.adapter_mlp: nn.Module = nn.Identity()

    def _sublayer(self, x: Tensor, norm: nn.LayerNorm, fn: Callable[[Tensor], Tensor], adapter: nn.Module) -> Tensor:
        """x + adapter(fn(norm(x))) (pre-norm), or norm(x + adapter(fn(x))) (post-norm)."""
        if self.norm_first:
            return x + adapter(fn(norm(x)))
        return norm(x + adapter(fn(x)))

    def forward(self, x: Tensor, context: Tensor | None = None, *, mask: Tensor | None = None, causal: bool = False,
                context_mask: Tensor | None = None, need_weights: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        """x (B, T, d); context (B, S, d_c) for cross-attention; masks bool, True = may attend
        (mask broadcastable to (B, h, T, T), context_mask to (B, h, T, S)). Returns x (B, T, d)
        and, when need_weights, {"self": (B, h, T, T), "cross": (B, h, T, S)}."""
        maps: dict[str, Tensor] = {}

        def self_attention(z: Tensor) -> Tensor:
            out, w = self.self_attn(z, mask=mask, causal=causal, need_weights=need_weights)  # (B, T, d)
            if w is not None:
                maps["self"] = w  # (B, h, T, T)
            return self.drop(out)

        x = self._sublayer(x, self.norm1, self_attention, self.adapter_attn)
        if self.cross_attn is not None:
            if context is None:
                raise ValueError("this block has cross-attention: give it the context (the encoder's output).")

            def cross_attention(z: Tensor) -> Tensor:
                out, w = self.cross_attn(z, context, mask=context_mask, need_weights=need_weights)  # (B, T, d)
                if w is not None:
                    maps["cross"] = w  # (B, h, T, S)
                return self.drop(out)

            x = self._sublayer(x, self.norm_cross, cross_attention, self.adapter_cross)
        x = self._sublayer(x, self.norm2, self.mlp, self.adapter_mlp)  # (B, T, d)
        return x, maps


@dataclass
class TransformerConfig:
    """The shape of a stack of blocks."""

    d_model: int = 64  # width of every token's vector
    heads: int = 4  # attention heads per layer; d_model / heads dimensions each
    layers: int = 2  # blocks in the stack
    mlp_ratio: float = 4.0  # the MLP's hidden width, as a multiple of d_model
    dropout: float = 0.0
    norm_first: bool = True  # pre-norm (GPT-2, ViT) or post-norm (the 2017 paper)
    use_sdpa: bool = False  # F.scaled_dot_product_attention's fused kernel when no weights are asked for

    def __post_init__(self) -> None:
        check_heads(self.d_model, self.heads)
        if self.layers < 1:
            raise ValueError(f"layers={self.layers}: a stack needs at least 1 block.")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio={self.mlp_ratio}: the MLP needs a positive width.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout}: must be in [0, 1).")


class _Stack(nn.Module):
    """Blocks in a row, then a final layer norm (pre-norm only: post-norm ends normalised)."""

    def __init__(self, cfg: TransformerConfig, *, cross_attention: bool, context_dim: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.d_model, cfg.heads, mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout,
                             cross_attention=cross_attention, context_dim=context_dim, norm_first=cfg.norm_first,
                             use_sdpa=cfg.use_sdpa)
            for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()

    def _run(self, x: Tensor, context: Tensor | None, *, mask: Tensor | None, causal: bool,
             context_mask: Tensor | None, need_weights: bool,
             before_block: BeforeBlock | None) -> tuple[Tensor, AttentionMaps]:
        maps: AttentionMaps = []
        for i, block in enumerate(self.blocks):
            if before_block is not None:
                x = before_block(i, x)  # (B, T', d)
            x, w = block(x, context, mask=mask, causal=causal, context_mask=context_mask, need_weights=need_weights)
            if need_weights:
                maps.append(w)
        return self.norm(x), maps  # (B, T, d)


class TransformerEncoder(_Stack):
    """N blocks of self-attention + MLP over one sequence (a sentence, image patches, ...)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__(cfg, cross_attention=False)

    def forward(self, x: Tensor, mask: Tensor | None = None, *, causal: bool = False, need_weights: bool = False,
                before_block: BeforeBlock | None = None) -> tuple[Tensor, AttentionMaps]:
        """x (B, T, d) → (B, T, d), and per layer {"self": (B, h, T, T)} when need_weights.
        `causal` makes it a decoder-only (GPT-style) stack; mask: True = may attend."""
        return self._run(x, None, mask=mask, causal=causal, context_mask=None, need_weights=need_weights,
                         before_block=before_block)


class TransformerDecoder(_Stack):
    """N blocks of masked self-attention, cross-attention to a context, and MLP."""

    def __init__(self, cfg: TransformerConfig, context_dim: int | None = None) -> None:
        super().__init__(cfg, cross_attention=True, context_dim=context_dim)

    def forward(self, x: Tensor, context: Tensor, *, causal: bool = True, mask: Tensor | None = None,
                context_mask: Tensor | None = None, need_weights: bool = False,
                before_block: BeforeBlock | None = None) -> tuple[Tensor, AttentionMaps]:
        """x (B, T, d), context (B, S, d_c) → (B, T, d), and per layer {"self": (B, h, T, T),
        "cross": (B, h, T, S)} when need_weights. causal=False lets position t see the future."""
        return self._run(x, context, mask=mask, causal=causal, context_mask=context_mask, need_weights=need_weights,
                         before_block=before_block)


# ---------------------------------------------------------------------------- the seq2seq model


@register_model("transformer", task="seq2seq", inputs=("tokens",), example_shape=(8,),
                description="encoder-decoder Transformer: self-attention, masked self-attention, cross-attention")
class Seq2SeqTransformer(nn.Module):
    """Token embedding · √d + sinusoidal positions → encoder; the shifted target the same way →
    decoder (causal self-attention, cross-attention to the encoder) → linear → next-token logits."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (8,)  # (S,): source length (targets may be as long, or a little longer)
        num_classes: int = 12  # vocabulary size, special tokens included
        d_model: int = 64
        heads: int = 4
        layers: int = 2  # encoder blocks, and as many decoder blocks
        mlp_ratio: float = 2.0
        dropout: float = 0.0
        causal: bool = True  # False: the decoder may look ahead (trains on a leak, fails to generate)
        norm_first: bool = True
        use_sdpa: bool = False

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            if len(self.input_shape) != 1 or self.input_shape[0] < 1:
                raise ValueError(f"the transformer reads token sequences (S,), not inputs of shape {self.input_shape}.")
            if self.num_classes < 2:
                raise ValueError(f"num_classes={self.num_classes}: a vocabulary needs at least 2 tokens.")
            self.stack()  # checks d_model, heads, layers

        def stack(self) -> TransformerConfig:
            return TransformerConfig(d_model=self.d_model, heads=self.heads, layers=self.layers,
                                     mlp_ratio=self.mlp_ratio, dropout=self.dropout, norm_first=self.norm_first,
                                     use_sdpa=self.use_sdpa)

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Embedding(cfg.num_classes, d)  # shared by source and target tokens
        self.register_buffer("positions", sinusoidal_positions(2 * cfg.input_shape[0] + 16, d), persistent=False)
        self.encoder = TransformerEncoder(cfg.stack())
        self.decoder = TransformerDecoder(cfg.stack())
        self.head = nn.Linear(d, cfg.num_classes)
        self.drop = nn.Dropout(cfg.dropout)

    def _tokens(self, ids: Tensor) -> Tensor:
        """(B, T) ids → (B, T, d): embedding · √d plus position."""
        T = ids.shape[1]
        if T > self.positions.shape[0]:
            raise ValueError(f"sequences of {T} tokens are longer than this model's {self.positions.shape[0]} positions.")
        return self.drop(self.embed(ids) * math.sqrt(self.cfg.d_model) + self.positions[:T])  # (B, T, d)

    def encode(self, src: Tensor, *, need_weights: bool = False) -> tuple[Tensor, AttentionMaps]:
        """src (B, S) → memory (B, S, d)."""
        return self.encoder(self._tokens(src), need_weights=need_weights)

    def decode(self, tgt_in: Tensor, memory: Tensor, *, need_weights: bool = False) -> tuple[Tensor, AttentionMaps]:
        """tgt_in (B, T) (<bos> first) and memory (B, S, d) → logits (B, T, vocab)."""
        y, maps = self.decoder(self._tokens(tgt_in), memory, causal=self.cfg.causal, need_weights=need_weights)
        return self.head(y), maps  # (B, T, vocab)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: logits (B, T, vocab) for the next token at every target position."""
        memory, _ = self.encode(src)  # (B, S, d)
        return self.decode(tgt_in, memory)[0]  # (B, T, vocab)

    def attention_maps(self, src: Tensor, tgt_in: Tensor) -> dict[str, list[Tensor]]:
        """Every head's weights, per layer: "encoder" (B, h, S, S), "decoder" (B, h, T, T),
        "cross" (B, h, T, S)."""
        memory, enc = self.encode(src, need_weights=True)
        _, dec = self.decode(tgt_in, memory, need_weights=True)
        return {"encoder": [m["self"] for m in enc], "decoder": [m["self"] for m in dec],
                "cross": [m["cross"] for m in dec]}

    @torch.no_grad()
    def generate(self, src: Tensor, length: int, bos: int) -> Tensor:
        """Greedy decoding: start from <bos>, append the most likely next token `length` times.
        Returns (B, length) tokens (without the <bos>)."""
        memory, _ = self.encode(src)  # (B, S, d)
        out = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)  # (B, 1)
        for _ in range(length):
            logits, _ = self.decode(out, memory)  # (B, t, vocab)
            out = torch.cat([out, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)  # (B, t + 1)
        return out[:, 1:]  # (B, length)
