"""Scaled dot-product attention with a mask (lesson: the Transformer)."""

import math

import torch
from torch import Tensor


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """softmax(q kᵀ / √d, masked) v, and the weights.

    q:    (..., T_q, d)    queries, one row per position asking
    k:    (..., T_k, d)    keys, one row per position answering
    v:    (..., T_k, d_v)  values, what each key hands over
    mask: None, or bool broadcastable to (..., T_q, T_k): True where query i may attend to
          key j (the convention of F.scaled_dot_product_attention; nn.MultiheadAttention's
          boolean masks mean the opposite)

    a_ij = q_i · k_j / √d                 (−∞ where the mask is False)
    w_ij = exp(a_ij) / Σ_j' exp(a_ij')    (softmax over the keys j)
    out_i = Σ_j w_ij v_j

    Returns (out, weights): out (..., T_q, d_v), weights (..., T_q, T_k), each row summing to 1.
    """
    raise NotImplementedError  # your code here
