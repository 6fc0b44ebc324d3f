"""NT-Xent, SimCLR's contrastive loss (lesson: self-supervised learning): the reference."""

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR eq. (1), averaged over the 2N views (see the starter for the shapes)."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d) unit rows: dot products are cosines
    logits = z @ z.T / temperature  # (2N, 2N) s(z_i, z_k) / τ
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))  # k ≠ i
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])  # (2N,) the other view of each
    return F.cross_entropy(logits, positive)  # mean over the 2N anchors of −log softmax at the positive
