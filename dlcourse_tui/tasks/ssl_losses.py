"""The losses of the self-supervised lesson, written out as the papers write them, and the
collapse monitor. Each takes a batch of embeddings of two views of the same images (row i
of `z1` and row i of `z2` come from image i) and returns a 0-d tensor.

- NT-Xent, SimCLR eq. (1) (Chen et al. 2020): for the positive pair (i, j) among the 2N
  views of a batch, with s = cosine similarity and τ the temperature,

      ℓ(i, j) = −log  exp(s(z_i, z_j) / τ) / Σ_{k ≠ i} exp(s(z_i, z_k) / τ)

  and L = 1/(2N) Σ_i ℓ(i, j(i)): every other view in the batch is a negative.
- BYOL eq. (2) (Grill et al. 2020): the online prediction q and the target projection z′
  (no gradient flows into z′), both ℓ2-normalised,

      L = ‖q̄ − z̄′‖²₂ = 2 − 2 · ⟨q, z′⟩ / (‖q‖₂ · ‖z′‖₂)

  symmetrised by swapping the views (the task does that: two calls).
- Barlow Twins eq. (1) (Zbontar et al. 2021): with each embedding dimension normalised
  over the batch (mean 0, standard deviation 1), the cross-correlation matrix
  C_ij = Σ_b z¹_bi z²_bj / N is driven towards the identity,

      L = Σ_i (1 − C_ii)²  +  λ Σ_i Σ_{j ≠ i} C_ij²

  (invariance on the diagonal, redundancy reduction off it).
- The collapse monitor (Chen & He 2021, "Exploring Simple Siamese Representation
  Learning", §4.1): the standard deviation over the batch of each dimension of z / ‖z‖₂,
  averaged over dimensions. About 1/√d while embeddings spread over the sphere, 0 when every
  image maps to the same point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BN_EPS = 1e-5  # Barlow Twins normalises like a batch norm without its affine part


def contrastive_logits(z1: Tensor, z2: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """s(z_i, z_k) / τ for every pair of the 2N views, with k = i masked out, and the index
    of each view's positive: (2N, 2N) logits, (2N,) targets."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d) unit vectors: dot products are cosines
    logits = z @ z.T / temperature  # (2N, 2N)
    self_pair = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_pair, float("-inf"))  # k ≠ i: a view is not its own negative
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # (2N,) view i + N of image i
    return logits, positive


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR eq. (1), averaged over all 2N anchors: (N, d), (N, d) -> ()."""
    logits, positive = contrastive_logits(z1, z2, temperature)
    return F.cross_entropy(logits.float(), positive)  # −log softmax at the positive, mean over i


def byol_loss(q: Tensor, z_target: Tensor) -> Tensor:
    """BYOL eq. (2), mean over the batch: 2 − 2·cos(q, z′); z′ is detached (the target
    network is not trained by this loss). (N, d), (N, d) -> ()."""
    cos = F.cosine_similarity(q, z_target.detach(), dim=1)  # (N,)
    return (2 - 2 * cos).mean()


def cross_correlation(z1: Tensor, z2: Tensor) -> Tensor:
    """C_ij = Σ_b z¹_bi z²_bj / N after normalising each dimension over the batch: (d, d)."""
    n = z1.shape[0]
    a = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + BN_EPS)  # (N, d) mean 0, std 1 per dimension
    b = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + BN_EPS)
    return a.T @ b / n  # (d, d)


def barlow_twins_loss(z1: Tensor, z2: Tensor, lambda_offdiag: float) -> Tensor:
    """Barlow Twins eq. (1): Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij². (N, d), (N, d) -> ()."""
    c = cross_correlation(z1.float(), z2.float())  # (d, d)
    diagonal = torch.diagonal(c)  # (d,)
    invariance = (1 - diagonal).pow(2).sum()
    redundancy = c.pow(2).sum() - diagonal.pow(2).sum()
    return invariance + lambda_offdiag * redundancy


def embedding_std(z: Tensor) -> Tensor:
    """The collapse monitor: mean over dimensions of the batch std of z / ‖z‖₂. (N, d) -> ()."""
    return F.normalize(z.float(), dim=1).std(dim=0).mean()
