"""The reparameterisation trick and the Gaussian KL term (lesson: VAE; Kingma & Welling 2014)."""

import torch
from torch import Tensor


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """A sample of N(μ, diag σ²) through which gradients reach μ and log σ².

    mu, logvar, eps: (B, J)   (logvar = log σ², eps ~ N(0, I) drawn by the caller)

    σ = exp(½ · log σ²),   z = μ + σ ⊙ ε

    Returns z of shape (B, J).
    """
    raise NotImplementedError  # your code here


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) of each example, in closed form.

    mu, logvar: (B, J)

    KL_b = ½ Σ_j (μ_bj² + σ_bj² − 1 − log σ_bj²)

    Returns a tensor of shape (B,): summed over the J latent dimensions, one value per example.
    """
    raise NotImplementedError  # your code here
