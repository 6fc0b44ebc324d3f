"""Checks of attention: shapes, values against the reference and against PyTorch's own
F.scaled_dot_product_attention, the mask's meaning, and hidden ones (a causal mask over
heads, large d, half a batch masked)."""

import torch
import torch.nn.functional as F

from dlcourse_tui.exercises.checking import CheckFailed, check, expect_close, expect_tensor, randn, unpack


def qkv(*lead: int, t_q: int = 4, t_k: int = 5, d: int = 8, d_v: int = 6, seed: int = 0):
    return (randn(*lead, t_q, d, seed=seed), randn(*lead, t_k, d, seed=seed + 1),
            randn(*lead, t_k, d_v, seed=seed + 2))  # (..., T_q, d), (..., T_k, d), (..., T_k, d_v)


def call(mine, q, k, v, mask=None):
    return unpack(mine.attention(q.clone(), k.clone(), v.clone(), None if mask is None else mask.clone()),
                  ("out", "weights"), "attention")


@check("returns out (T_q, d_v) and weights (T_q, T_k) whose rows sum to 1")
def shapes(mine, ref) -> None:
    q, k, v = qkv(seed=0)
    inputs = {"q": q, "k": k, "v": v}
    out, w = call(mine, q, k, v)
    expect_tensor("out", out, (4, 6), inputs)
    expect_tensor("weights", w, (4, 5), inputs)
    expect_close("weights.sum(-1)", w.sum(-1), torch.ones(4, dtype=q.dtype), inputs)


@check("the output and weights are the reference's (no mask)")
def values(mine, ref) -> None:
    q, k, v = qkv(2, seed=3)
    inputs = {"q": q, "k": k, "v": v}
    out, w = call(mine, q, k, v)
    want_out, want_w = ref.attention(q, k, v)
    expect_close("weights", w, want_w, inputs, factors={"√d": 8 ** 0.5, "d": 8})
    expect_close("out", out, want_out, inputs)


@check("a padding mask: True keys are seen, False ones get weight 0")
def padding(mine, ref) -> None:
    q, k, v = qkv(2, seed=6)
    mask = torch.tensor([[True, True, True, False, False], [True, False, True, True, True]])[:, None, :]  # (B, 1, T_k)
    inputs = {"q": q, "k": k, "v": v, "mask": mask}
    out, w = call(mine, q, k, v, mask)
    if w.shape == (2, 4, 5) and bool((w[~mask.expand(2, 4, 5)].abs() > 1e-6).any()):
        raise CheckFailed("keys where the mask is False still get weight: the mask means True = may attend "
                          "(nn.MultiheadAttention's boolean masks mean the opposite)", [])
    want_out, want_w = ref.attention(q, k, v, mask)
    expect_close("weights", w, want_w, inputs)
    expect_close("out", out, want_out, inputs)


@check("agrees with torch.nn.functional.scaled_dot_product_attention, masked", hidden=True)
def against_torch(mine, ref) -> None:
    q, k, v = qkv(3, 2, t_q=6, t_k=6, seed=9)  # (B, heads, T, d)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()  # query i sees keys 0 … i
    inputs = {"q": q, "k": k, "v": v, "mask": causal}
    out, _ = call(mine, q, k, v, causal)
    expect_close("out", out, F.scaled_dot_product_attention(q, k, v, attn_mask=causal), inputs, atol=1e-5)


@check("large d (256): scaled by √d, the weights are not one-hot", hidden=True)
def large_d(mine, ref) -> None:
    q, k, v = qkv(t_q=3, t_k=7, d=256, d_v=4, seed=12)
    inputs = {"q": q, "k": k, "v": v}
    _, w = call(mine, q, k, v)
    expect_close("weights", w, ref.attention(q, k, v)[1], inputs, factors={"√d": 16.0, "d": 256})
