"""An image captioner in the style of CPTR (Liu et al. 2021, "CPTR: Full Transformer Network
for Image Captioning"), with Oscar's object tags as an option (Li et al. 2020, "Oscar:
Object-Semantics Aligned Pre-training for Vision-Language Tasks").

The encoder is chapter 4's ViT (models/vit.py) without its classifier: p×p patches, [CLS] and
2-D sine-cosine positions, the transformer encoder; its output rows are the decoder's memory M
(P + 1 rows, [CLS] first). The patches are embedded by a small CNN by default (`stem="conv"`,
the ViT paper's hybrid input: log2(p) stages of 3×3 convolution that halve the image, one token
per cell of the patch grid; the first two stages are stride-2 convolutions), which learns far
faster on a CPU budget than the ViT's linear patch embedding (`stem="linear"`). The decoder is chapter 4's
TransformerDecoder: word embeddings · √d plus sinusoidal positions, masked (causal)
self-attention, cross-attention to M, an MLP, and a linear layer to next-word logits:

    p(w_t | w_<t, image) = softmax(W_o Decoder(E[w_<t] √d + PE, M))

trained with teacher forcing (the decoder reads <bos> w_1 … w_{T−1} and predicts w_1 … w_T
at every position at once; the causal mask keeps position t from reading w_t). E starts with
standard deviation 1/√d, so E·√d is of unit size like the patch tokens: PyTorch's default of
1 makes the words √d times larger, and what cross-attention adds is drowned in them.

With `tags`, the class names of the objects in the image (words of the same vocabulary)
enter the encoder beside the patches, as Oscar feeds detected object tags beside region
features: each tag is the decoder's own embedding of that word plus a learned "this is a
tag" vector, without position (tags are a set). Patches and tags attend to each other in
every encoder layer, and the decoder attends to both: the tag "circle" is an anchor that
ties the word to the patches that show one. Padded tag slots are masked out as keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.models.attention import combine_masks, padding_mask
from dlcourse_tui.models.registry import register_model
from dlcourse_tui.models.transformer import (AttentionMaps, TransformerConfig, TransformerDecoder,
                                             sinusoidal_positions)
from dlcourse_tui.models.vit import ViT

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2  # as in data/vocab.py
STEM_STRIDED = 2  # the conv stem's first two stages are stride-2 convolutions: the same BLEU, a third less time


@register_model("captioner", task="caption", inputs=("image", "tokens"), example_shape=(3, 64, 64),
                description="CPTR-style captioner: ViT patch encoder, transformer decoder with cross-attention; "
                            "Oscar-style object tags as an option")
class Captioner(nn.Module):
    """ViT encoder (optionally with tag tokens) → memory; words → causal decoder with cross-attention → logits."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = (3, 64, 64)
        num_classes: int = 42  # the vocabulary's size, <pad> <bos> <eos> included
        patch_size: int = 16  # 64×64 scenes: a 4×4 grid of 16-pixel patches
        d_model: int = 64
        heads: int = 4
        encoder_layers: int = 3
        decoder_layers: int = 2
        mlp_ratio: float = 2.0
        dropout: float = 0.0
        locality: bool = True  # the ViT's learned bias on distance between patches, starting local
        shifted_patches: bool = False  # the ViT's shifted patch tokenization
        stem: str = "conv"  # "conv": the hybrid ViT's small CNN down to the patch grid; "linear": the ViT's patch embedding
        tags: bool = False  # Oscar: object tags enter the encoder beside the patches
        max_length: int = 40  # the longest token sequence the decoder reads (positions)
        use_sdpa: bool = False

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            if self.num_classes < 4:
                raise ValueError(f"num_classes={self.num_classes}: a vocabulary needs the 3 special tokens and a word.")
            if self.max_length < 2:
                raise ValueError(f"max_length={self.max_length}: a caption needs at least <bos> and one word.")
            if self.stem not in ("linear", "conv"):
                raise ValueError(f"stem={self.stem!r}: use 'linear' (the ViT's patch embedding) or 'conv'.")
            if self.stem == "conv" and (self.patch_size < 2 or self.patch_size & (self.patch_size - 1)):
                raise ValueError(f"stem='conv' halves the image until it is the patch grid, so patch_size must be "
                                 f"a power of 2 (2, 4, 8, 16), not {self.patch_size}.")
            self.vit()  # checks the image, patch size, widths and heads
            self.decoder_stack()

        def vit(self) -> ViT.Config:
            return ViT.Config(input_shape=self.input_shape, num_classes=1, patch_size=self.patch_size,
                              d_model=self.d_model, heads=self.heads, layers=self.encoder_layers,
                              mlp_ratio=self.mlp_ratio, dropout=self.dropout, use_sdpa=self.use_sdpa,
                              locality=self.locality, shifted_patches=self.shifted_patches)

        def decoder_stack(self) -> TransformerConfig:
            return TransformerConfig(d_model=self.d_model, heads=self.heads, layers=self.decoder_layers,
                                     mlp_ratio=self.mlp_ratio, dropout=self.dropout, use_sdpa=self.use_sdpa)

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.encoder = ViT(cfg.vit())
        self.encoder.head = nn.Identity()  # the classifier is not used: the memory is every row
        conv = cfg.stem == "conv"
        self.stem = conv_stem(cfg.input_shape[0], d, cfg.patch_size, strided=STEM_STRIDED) if conv else None
        if self.stem is not None:
            self.encoder.patch_embed = nn.Identity()  # the convolutions embed the patches instead
        self.embed = nn.Embedding(cfg.num_classes, d)  # words, and (with tags) the tag words too
        nn.init.normal_(self.embed.weight, std=d ** -0.5)  # · √d in use: rows of unit scale, like the patch tokens
        self.register_buffer("positions", sinusoidal_positions(cfg.max_length, d), persistent=False)  # (L, d)
        self.tag_type = nn.Parameter(torch.randn(1, 1, d) * 0.02) if cfg.tags else None  # "this row is a tag"
        self.decoder = TransformerDecoder(cfg.decoder_stack())
        self.head = nn.Linear(d, cfg.num_classes)
        self.drop = nn.Dropout(cfg.dropout)

    @property
    def patches(self) -> int:
        """P: the patch rows of the memory (they follow [CLS])."""
        gh, gw = self.encoder.cfg.grid
        return gh * gw

    # -- the encoder ---------------------------------------------------------------------
    def patch_tokens(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) → the ViT's z_0 (B, P + 1, d): [CLS], then the embedded patches, positions added."""
        if self.stem is None:
            return self.encoder.tokens(x)  # (B, P + 1, d)
        vit = self.encoder
        z = vit.patch_norm(self.stem(x).flatten(2).transpose(1, 2))  # (B, d, gh, gw) → (B, P, d), row by row
        cls = vit.cls_token.expand(z.shape[0], -1, -1)  # (B, 1, d)
        return vit.drop(torch.cat([cls, z], dim=1) + vit.pos_embed)  # (B, P + 1, d)

    def encode(self, x: Tensor, tags: Tensor | None = None, *,
               need_weights: bool = False) -> tuple[Tensor, Tensor | None, AttentionMaps]:
        """x (B, C, H, W) standardised, tags (B, K) word ids (<pad> for none) → memory
        (B, 1 + P [+ K], d), its key mask (B, 1, 1, 1 + P + K) or None, and the encoder's maps."""
        z = self.patch_tokens(x)  # (B, P + 1, d)
        bias = self.encoder.attention_bias()  # (1, h, P + 1, P + 1) or None
        keep = None
        if self.cfg.tags:
            if tags is None:
                tags = torch.zeros(x.shape[0], 0, dtype=torch.long, device=x.device)  # (B, 0): no tags
            K = tags.shape[1]
            t = self.embed(tags) * math.sqrt(self.cfg.d_model) + self.tag_type  # (B, K, d), no position: a set
            z = torch.cat([z, self.drop(t)], dim=1)  # (B, P + 1 + K, d)
            real = torch.ones(x.shape[0], z.shape[1] - K, dtype=torch.bool, device=x.device)  # (B, P + 1)
            keep = padding_mask(torch.cat([real, tags != PAD_ID], dim=1))  # (B, 1, 1, P + 1 + K)
            if bias is not None:
                bias = F.pad(bias, (0, K, 0, K))  # (1, h, P + 1 + K, P + 1 + K): no distance bias for tags
        mask = combine_masks(bias, keep)
        memory, maps = self.encoder.encoder(z, mask, need_weights=need_weights)  # (B, S, d)
        return memory, keep, maps

    # -- the decoder ---------------------------------------------------------------------
    def _words(self, ids: Tensor) -> Tensor:
        """(B, T) ids → (B, T, d): embedding · √d plus position."""
        T = ids.shape[1]
        if T > self.positions.shape[0]:
            raise ValueError(f"sequences of {T} tokens are longer than this model's {self.positions.shape[0]} positions.")
        return self.drop(self.embed(ids) * math.sqrt(self.cfg.d_model) + self.positions[:T])  # (B, T, d)

    def decode(self, ids: Tensor, memory: Tensor, memory_mask: Tensor | None = None, *,
               need_weights: bool = False) -> tuple[Tensor, AttentionMaps]:
        """ids (B, T) (<bos> first), memory (B, S, d) → next-word logits (B, T, vocab), and per
        layer {"self": (B, h, T, T), "cross": (B, h, T, S)} when need_weights."""
        y, maps = self.decoder(self._words(ids), memory, causal=True, context_mask=memory_mask,
                               need_weights=need_weights)  # (B, T, d)
        return self.head(y), maps  # (B, T, vocab)

    def forward(self, x: Tensor, ids: Tensor, tags: Tensor | None = None) -> Tensor:
        """Teacher forcing: images (B, C, H, W), the shifted caption (B, T) → logits (B, T, vocab)."""
        memory, keep, _ = self.encode(x, tags)  # (B, S, d)
        return self.decode(ids, memory, keep)[0]  # (B, T, vocab)

    # -- generating ----------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, x: Tensor, tags: Tensor | None = None, *, max_len: int = 32, beam: int = 1,
                 prefix: Tensor | None = None) -> Tensor:
        """Captions for images x: (B, ≤ max_len) word ids after <bos> (and after `prefix`, (P,)
        ids the caption must start with, which are included), <eos> then <pad> once done.
        beam = 1 is greedy decoding; beam > 1 keeps the `beam` most likely partial captions."""
        memory, keep, _ = self.encode(x, tags)  # (B, S, d)
        B = x.shape[0]
        start = torch.full((B, 1), BOS_ID, dtype=torch.long, device=x.device)  # (B, 1)
        if prefix is not None and prefix.numel():
            start = torch.cat([start, prefix.to(x.device)[None].expand(B, -1)], dim=1)  # (B, 1 + P)
        steps = max(0, min(max_len, self.positions.shape[0] - 1) - (start.shape[1] - 1))
        if beam <= 1:
            out = greedy_decode(self, start, memory, keep, steps)
        else:
            out = beam_decode(self, start, memory, keep, steps, beam)
        return out[:, 1:]  # (B, ≤ max_len) without <bos>

    def cross_attention(self, x: Tensor, ids: Tensor, tags: Tensor | None = None) -> Tensor:
        """The last decoder layer's cross-attention, mean over heads, of each position of ids
        (B, T) over the memory: (B, T, S), S = 1 + P [+ K] ([CLS], patches, tags)."""
        memory, keep, _ = self.encode(x, tags)
        _, maps = self.decode(ids, memory, keep, need_weights=True)
        return maps[-1]["cross"].mean(dim=1)  # (B, T, S)


def conv_stem(c: int, d: int, patch: int, strided: int = 0) -> nn.Sequential:
    """The hybrid ViT's input (Dosovitskiy et al. 2021, section 3.1): log2(patch) stages that
    each halve the image (c → 16 → 32 → 64 … channels), then a 1×1 convolution to d:
    (B, c, H, W) → (B, d, H/p, W/p), one token per cell of the patch grid. A stage is a 3×3
    convolution, BatchNorm, ReLU and a 2×2 max-pool; the first `strided` stages are a 3×3
    convolution of stride 2 instead (as ResNet's stem: the large early maps cost the most)."""
    n = patch.bit_length() - 1
    widths = [c] + [16 * 2 ** i for i in range(n)]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        if i < strided:
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        else:
            layers += [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    layers.append(nn.Conv2d(widths[-1], d, 1))  # (B, d, H/p, W/p)
    return nn.Sequential(*layers)


def greedy_decode(model: Captioner, seq: Tensor, memory: Tensor, keep: Tensor | None, steps: int) -> Tensor:
    """Append the most likely next word `steps` times (<pad> after <eos>); stops once every
    row has ended. seq (B, T0) → (B, T0 + ≤ steps). Only the rows still writing are decoded
    at each step (each step re-reads the whole prefix: the long captions cost the most)."""
    done = torch.zeros(seq.shape[0], dtype=torch.bool, device=seq.device)  # (B,)
    for _ in range(steps):
        live = (~done).nonzero().squeeze(1)  # (b,) rows without <eos> yet
        logits, _ = model.decode(seq[live], memory[live], None if keep is None else keep[live])  # (b, t, vocab)
        nxt = torch.full_like(done, PAD_ID, dtype=torch.long)  # (B,)
        nxt[live] = logits[:, -1].argmax(dim=-1)
        seq = torch.cat([seq, nxt[:, None]], dim=1)  # (B, t + 1)
        done |= nxt == EOS_ID
        if bool(done.all()):
            break
    return seq


def beam_decode(model: Captioner, seq: Tensor, memory: Tensor, keep: Tensor | None, steps: int, beam: int) -> Tensor:
    """Beam search: keep the `beam` partial captions of highest total log-probability per
    image; a finished one (after <eos>) only grows <pad> at no cost. Returns the best, (B, T)."""
    B, k = seq.shape[0], beam
    seq = seq.repeat_interleave(k, dim=0)  # (B·k, T0)
    memory = memory.repeat_interleave(k, dim=0)  # (B·k, S, d)
    keep = keep.repeat_interleave(k, dim=0) if keep is not None else None
    score = torch.full((B, k), float("-inf"), device=seq.device)  # (B, k)
    score[:, 0] = 0.0  # every beam starts as the same sequence: expand only the first
    done = torch.zeros(B * k, dtype=torch.bool, device=seq.device)  # (B·k,)
    for _ in range(steps):
        logits, _ = model.decode(seq, memory, keep)  # (B·k, t, V)
        logp = torch.log_softmax(logits[:, -1].float(), dim=-1)  # (B·k, V)
        V = logp.shape[-1]
        ended = torch.full_like(logp, float("-inf"))
        ended[:, PAD_ID] = 0.0
        logp = torch.where(done[:, None], ended, logp)  # a finished caption: <pad>, log 1 = 0
        cand = (score[..., None] + logp.view(B, k, V)).view(B, k * V)  # (B, k·V)
        score, idx = cand.topk(k, dim=1)  # (B, k), sorted best first
        parent = (idx // V + torch.arange(B, device=seq.device)[:, None] * k).flatten()  # (B·k,) rows of seq
        word = (idx % V).flatten()  # (B·k,)
        seq = torch.cat([seq[parent], word[:, None]], dim=1)  # (B·k, t + 1)
        done = done[parent] | (word == EOS_ID)
        if bool(done.all()):
            break
    return seq.view(B, k, -1)[:, 0]  # (B, T): the best beam
