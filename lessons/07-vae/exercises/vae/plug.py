"""--use vae: the VAE samples z with the learner's reparameterize (ε drawn as the model
draws it) and the task's ELBO takes the learner's gaussian_kl."""

from typing import Any

import torch
from torch import Tensor


def plug(mine: Any, config: Any) -> dict[str, Any]:
    """What to replace for the run: models.vae.reparameterize and tasks.generate.gaussian_kl."""
    reparameterize, kl = mine.reparameterize, mine.gaussian_kl

    def sample(mu: Tensor, logvar: Tensor) -> Tensor:
        return reparameterize(mu, logvar, torch.randn_like(mu))  # (B, latent)

    return {"dlcourse_tui.models.vae:reparameterize": sample, "dlcourse_tui.tasks.generate:gaussian_kl": kl}
