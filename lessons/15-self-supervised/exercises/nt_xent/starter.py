"""NT-Xent, SimCLR's contrastive loss (lesson: self-supervised learning)."""

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR eq. (1), averaged over the 2N views: a 0-d tensor.

    z1: (N, d)  the projections of the first views, row i from image i
    z2: (N, d)  the projections of the second views, same order
    temperature: τ > 0

    Stack the 2N views, z = [z1; z2] (2N, d), and with s(u, v) = uᵀv / (‖u‖ ‖v‖):

        ℓ(i, j) = −log  exp(s(z_i, z_j) / τ) / Σ_{k ≠ i} exp(s(z_i, z_k) / τ)

    where j is i's other view (i + N for i < N, i − N after). L = 1/(2N) Σ_i ℓ(i, j(i)).
    The sum in the denominator leaves out k = i only: the positive is in it.
    """
    raise NotImplementedError  # your code here
