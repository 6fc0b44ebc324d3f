"""Checks of reparameterize and gaussian_kl: values, gradients that reach μ and log σ², the KL
of N(0, I) being 0; hidden: a wide latent, large variances."""

import torch

from dlcourse_tui.exercises.checking import CheckFailed, check, expect_close, grad_check, randn


def example(b: int, j: int, seed: int):
    return randn(b, j, seed=seed), randn(b, j, seed=seed + 1), randn(b, j, seed=seed + 2)


@check("reparameterize: z = μ + σ ⊙ ε with σ = exp(½ log σ²)")
def z_value(mine, ref) -> None:
    mu, logvar, eps = example(3, 2, seed=0)
    inputs = {"mu": mu, "logvar": logvar, "eps": eps}
    got = mine.reparameterize(mu.clone(), logvar.clone(), eps.clone())
    if isinstance(got, torch.Tensor) and got.shape == mu.shape and torch.allclose(got, mu + logvar.exp() * eps):
        raise CheckFailed("z = μ + σ² ⊙ ε: the noise is scaled by the variance; scale it by σ = exp(½ · log σ²).", [])
    if isinstance(got, torch.Tensor) and got.shape == mu.shape and torch.allclose(got, mu + logvar * eps):
        raise CheckFailed("z = μ + log σ² ⊙ ε: logvar is log σ², not σ; σ = exp(½ · logvar).", [])
    expect_close("z", got, ref.reparameterize(mu, logvar, eps), inputs)


@check("reparameterize: gradients reach mu and logvar")
def z_grad(mine, ref) -> None:
    mu, logvar, eps = example(2, 3, seed=10)
    m, lv = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    z = mine.reparameterize(m, lv, eps)
    if not isinstance(z, torch.Tensor) or z.grad_fn is None:
        raise CheckFailed("z does not depend on mu and logvar for autograd: no .detach(), .item(), .numpy() or "
                          "torch.tensor(...) on the way; build z from them with tensor operations.", [])
    z.sum().backward()
    inputs = {"mu": mu, "logvar": logvar, "eps": eps}
    grad_check("∂Σz/∂mu", m.grad if m.grad is not None else torch.zeros_like(mu), torch.ones_like(mu), inputs,
               against="the formula")
    grad_check("∂Σz/∂logvar", lv.grad if lv.grad is not None else torch.zeros_like(mu),
               0.5 * (0.5 * logvar).exp() * eps, inputs, against="the formula")


@check("gaussian_kl: one value per example, the reference's")
def kl_value(mine, ref) -> None:
    mu, logvar, _ = example(4, 3, seed=20)
    expect_close("kl", mine.gaussian_kl(mu.clone(), logvar.clone()), ref.gaussian_kl(mu, logvar),
                 {"mu": mu, "logvar": logvar},
                 factors={"2": (2.0, "the ½ in front of the sum is missing."), "J": (3.0, "a mean over the latent "
                          "dimensions where the KL sums them?")})


@check("gaussian_kl: the KL of N(0, I) from itself is 0")
def kl_zero(mine, ref) -> None:
    z = torch.zeros(2, 3, dtype=torch.float64)
    expect_close("kl", mine.gaussian_kl(z.clone(), z.clone()), torch.zeros(2, dtype=torch.float64),
                 {"mu": z, "logvar": z}, atol=1e-12)


@check("a latent of 16 dimensions, large variances", hidden=True)
def wide(mine, ref) -> None:
    mu, logvar, eps = example(5, 16, seed=30)
    logvar = logvar * 3
    inputs = {"mu": mu, "logvar": logvar, "eps": eps}
    expect_close("z", mine.reparameterize(mu.clone(), logvar.clone(), eps.clone()), ref.reparameterize(mu, logvar, eps),
                 inputs)
    expect_close("kl", mine.gaussian_kl(mu.clone(), logvar.clone()), ref.gaussian_kl(mu, logvar), inputs,
                 factors={"J": (16.0, "a mean over the latent dimensions where the KL sums them?")})


@check("float32 inputs give float32 results", hidden=True)
def float32(mine, ref) -> None:
    mu, logvar, eps = (t.float() for t in example(2, 2, seed=40))
    z, kl = mine.reparameterize(mu, logvar, eps), mine.gaussian_kl(mu, logvar)
    for name, t in (("z", z), ("kl", kl)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.float32:
            raise CheckFailed(f"{name} should keep its inputs' float32; it is {getattr(t, 'dtype', type(t).__name__)}.")
