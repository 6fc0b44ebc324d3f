"""Scaled dot-product attention and multi-head attention, written once for chapters 4 and 5
(Vaswani et al. 2017, "Attention Is All You Need", section 3.2).

Every query asks every key how well it matches, and takes the values in proportion:

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V

with q = W^Q x, k = W^K x, v = W^V x. Dividing by √d_k keeps the scores' spread near 1
whatever the head width, so the softmax does not saturate (the course's worked example:
scores 112 and 96 with d_k = 64 become 14 and 12, and softmax gives 0.88 and 0.12).
Multi-head attention runs h such attentions side by side on d_model / h dimensions each,
concatenates the h outputs and mixes them with W^O:

    MultiHead(x) = Concat(head_1, …, head_h) W^O,   head_i = Attention(x W_i^Q, x W_i^K, x W_i^V)

Masks here are boolean and mean "may attend" (True: the key takes part), as in
F.scaled_dot_product_attention's `attn_mask`. nn.MultiheadAttention's boolean masks mean
the opposite (True: the key is masked out); `torch_mha_mask` turns one into the other.
A float mask is added to the scores (0 keeps, −inf removes). A query row whose keys are
all masked has no softmax: its weights (and output) come out NaN, as in PyTorch.

`use_sdpa=True` takes PyTorch's fused kernel (FlashAttention or memory-efficient attention
where the hardware has them) when the weights are not asked for; the hand-written path is
the reference the tests check it against.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def causal_mask(t_q: int, t_k: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """(T_q, T_k) bool, True on and below the diagonal: query i may look at keys 0 … i.

    With T_k > T_q the queries are the last T_q positions (every earlier key is visible), as
    when decoding with a cache of past keys; F.scaled_dot_product_attention's is_causal
    aligns the triangle top-left instead, so for T_q ≠ T_k this module passes the mask."""
    t_k = t_q if t_k is None else t_k
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)  # (T_q, T_k)


def padding_mask(keep: Tensor) -> Tensor:
    """(B, T_k) bool, True for real tokens → (B, 1, 1, T_k), broadcastable over heads and queries."""
    return keep[:, None, None, :]  # (B, 1, 1, T_k)


def torch_mha_mask(mask: Tensor) -> Tensor:
    """A boolean "may attend" mask as nn.MultiheadAttention wants it (True: masked out)."""
    if mask.dtype != torch.bool:
        raise TypeError("torch_mha_mask converts boolean masks only; a float mask means the same to both")
    return ~mask


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """The keys every mask allows: boolean masks are and-ed, float masks added (None: no mask)."""
    out: Tensor | None = None
    for m in masks:
        if m is None:
            continue
        if out is None:
            out = m
        elif out.dtype == torch.bool and m.dtype == torch.bool:
            out = out & m
        else:
            out = _additive(out) + _additive(m)
    return out


def _additive(mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """0 where a boolean mask keeps a key, −inf where it drops one; float masks as they are."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))
    return mask


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    *,
    causal: bool = False,
    dropout: float = 0.0,
    need_weights: bool = True,
    use_sdpa: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """softmax(q kᵀ / √d + mask) v for q (…, T_q, d), k (…, T_k, d), v (…, T_k, d_v).

    `mask`: bool (True: may attend) or float (added to the scores), broadcastable to
    (…, T_q, T_k); `causal` adds `causal_mask`. Returns the output (…, T_q, d_v) and the
    attention weights (…, T_q, T_k), or None for the weights when need_weights is False and
    use_sdpa takes PyTorch's fused kernel (it never forms them). `dropout` drops weights
    (pass 0 in evaluation)."""
    if use_sdpa and not need_weights:
        if causal and (mask is not None or q.shape[-2] != k.shape[-2]):
            # SDPA takes a mask or is_causal, and its is_causal aligns top-left: fold the triangle in
            mask, causal = combine_masks(mask, causal_mask(q.shape[-2], k.shape[-2], q.device)), False
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)
        return out, None
    d = q.shape[-1]
    scores = (q * (1.0 / math.sqrt(d))) @ k.transpose(-2, -1)  # (…, T_q, T_k): q·k / √d (q scaled: fewer numbers)
    if causal:
        mask = combine_masks(mask, causal_mask(q.shape[-2], k.shape[-2], q.device))
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))  # (…, T_q, T_k)
        else:
            scores = scores + mask
    low = scores.dtype in (torch.float16, torch.bfloat16)  # half precision: the softmax in float32
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32 if low else None).to(q.dtype)  # (…, T_q, T_k), rows sum to 1
    attended = F.dropout(weights, p=dropout) if dropout > 0 else weights
    return attended @ v, (weights if need_weights else None)  # (…, T_q, d_v)


class MultiHeadAttention(nn.Module):
    """h heads of scaled dot-product attention over d_model / h dimensions each.

    Separate q_proj, k_proj, v_proj and out_proj nn.Linear layers (W^Q, W^K, W^V, W^O), so
    that LoRA can wrap each one and their weights copy to and from nn.MultiheadAttention
    (whose in_proj_weight is [W^Q; W^K; W^V] stacked). Self-attention when `context` is
    None; cross-attention otherwise: queries from x, keys and values from `context` (the
    encoder's output, image patches, ...)."""

    def __init__(self, d_model: int, heads: int, *, dropout: float = 0.0, bias: bool = True,
                 context_dim: int | None = None, use_sdpa: bool = False) -> None:
        super().__init__()
        check_heads(d_model, heads)
        self.d_model, self.heads, self.head_dim = d_model, heads, d_model // heads
        self.dropout = dropout
        self.use_sdpa = use_sdpa
        c = context_dim or d_model
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)  # W^Q
        self.k_proj = nn.Linear(c, d_model, bias=bias)  # W^K
        self.v_proj = nn.Linear(c, d_model, bias=bias)  # W^V
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)  # W^O

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, d_model) → (B, heads, T, d_model / heads)."""
        B, T, _ = x.shape
        return x.view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, h, T, d)

    def forward(self, x: Tensor, context: Tensor | None = None, *, mask: Tensor | None = None,
                causal: bool = False, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (B, T, d_model), context (B, S, context_dim) or None; mask broadcastable to
        (B, heads, T, S), bool True = may attend. Returns (B, T, d_model) and, when
        need_weights, every head's weights (B, heads, T, S)."""
        B, T, _ = x.shape
        src = x if context is None else context
        q = self.split_heads(self.q_proj(x))  # (B, h, T, d)
        k = self.split_heads(self.k_proj(src))  # (B, h, S, d)
        v = self.split_heads(self.v_proj(src))  # (B, h, S, d)
        out, weights = scaled_dot_product_attention(
            q, k, v, mask, causal=causal, dropout=self.dropout if self.training else 0.0,
            need_weights=need_weights, use_sdpa=self.use_sdpa)  # (B, h, T, d), (B, h, T, S)
        out = out.transpose(1, 2).reshape(B, T, self.d_model)  # (B, T, h·d): the heads concatenated
        return self.out_proj(out), weights  # (B, T, d_model)

    @torch.no_grad()
    def load_torch(self, mha: nn.MultiheadAttention) -> "MultiHeadAttention":
        """Copy the weights of an nn.MultiheadAttention (batch_first or not) into this module."""
        d = self.d_model
        if mha.in_proj_weight is not None:
            w_q, w_k, w_v = mha.in_proj_weight.split(d)
        else:
            w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
        for lin, w in ((self.q_proj, w_q), (self.k_proj, w_k), (self.v_proj, w_v)):
            lin.weight.copy_(w)
        if mha.in_proj_bias is not None:
            for lin, b in zip((self.q_proj, self.k_proj, self.v_proj), mha.in_proj_bias.split(d)):
                lin.bias.copy_(b)
        self.out_proj.weight.copy_(mha.out_proj.weight)
        if mha.out_proj.bias is not None:
            self.out_proj.bias.copy_(mha.out_proj.bias)
        return self


def divisors(n: int) -> list[int]:
    """The whole numbers that divide n, ascending."""
    return [i for i in range(1, n + 1) if n % i == 0]


def check_heads(d_model: int, heads: int) -> None:
    """ValueError (one sentence) unless d_model splits evenly into `heads` heads."""
    if d_model < 1 or heads < 1:
        raise ValueError(f"d_model={d_model}, heads={heads}: both must be at least 1.")
    if d_model % heads:
        raise ValueError(f"d_model={d_model} is not divisible by heads={heads}: each head gets d_model / heads "
                         f"dimensions; pick heads among {', '.join(str(h) for h in divisors(d_model) if h <= 16)} "
                         f"or a d_model that is a multiple of {heads}.")
