"""The reparameterisation trick and the Gaussian KL term: the reference solution."""

from torch import Tensor


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """z = μ + exp(½ log σ²) ⊙ ε."""
    return mu + (0.5 * logvar).exp() * eps  # (B, J)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """½ Σ_j (μ² + σ² − 1 − log σ²) per example."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)  # (B,)
