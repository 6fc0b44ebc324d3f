"""Checks of q_sample and p_sample_step on the lesson's linear β schedule (T = 100)."""

import torch

from dlcourse_tui.exercises.checking import CheckFailed, check, expect_close, randn

T = 100


def schedule(dtype=torch.float64):
    """β linear from 1e-4 to 0.02, scaled by 1000/T as the lesson does, and ᾱ."""
    betas = torch.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T, dtype=torch.float64)  # (T,)
    return betas.to(dtype), torch.cumprod(1 - betas, dim=0).to(dtype)  # (T,), (T,)


@check("q_sample: one step index for the whole batch")
def q_same_t(mine, ref) -> None:
    _, ab = schedule()
    x0, eps = randn(2, 1, 2, 2, seed=0), randn(2, 1, 2, 2, seed=1)
    t = torch.tensor([30, 30])
    inputs = {"x0": x0, "t": t, "eps": eps, "alpha_bars": "the lesson's ᾱ (T = 100)"}
    got = mine.q_sample(x0.clone(), t.clone(), eps.clone(), ab.clone())
    swapped = (1 - ab[30]).sqrt() * x0 + ab[30].sqrt() * eps
    if isinstance(got, torch.Tensor) and got.shape == x0.shape and torch.allclose(got, swapped):
        raise CheckFailed("x_t = √(1 − ᾱ_t)·x_0 + √ᾱ_t·ε: the two weights are swapped; the image keeps √ᾱ_t.", [])
    expect_close("x_t", got, ref.q_sample(x0, t, eps, ab), inputs)


@check("q_sample: a different step index for each example")
def q_each_t(mine, ref) -> None:
    _, ab = schedule()
    x0, eps = randn(3, 2, 2, 2, seed=10), randn(3, 2, 2, 2, seed=11)
    t = torch.tensor([0, 50, 99])
    inputs = {"x0": x0, "t": t, "eps": eps, "alpha_bars": "the lesson's ᾱ (T = 100)"}
    expect_close("x_t", mine.q_sample(x0.clone(), t.clone(), eps.clone(), ab.clone()), ref.q_sample(x0, t, eps, ab),
                 inputs)


@check("p_sample_step: one step at t = 41 (index 40)")
def p_middle(mine, ref) -> None:
    betas, ab = schedule()
    x, e, z = randn(2, 1, 3, 3, seed=20), randn(2, 1, 3, 3, seed=21), randn(2, 1, 3, 3, seed=22)
    inputs = {"x_t": x, "i": 40, "eps_pred": e, "z": z, "betas, alpha_bars": "the lesson's (T = 100)"}
    expect_close("x_{t−1}", mine.p_sample_step(x.clone(), 40, e.clone(), betas.clone(), ab.clone(), z.clone()),
                 ref.p_sample_step(x, 40, e, betas, ab, z), inputs)


@check("p_sample_step: the last step (t = 1, index 0) adds no noise")
def p_last(mine, ref) -> None:
    betas, ab = schedule()
    x, e, z = randn(2, 1, 2, 2, seed=30), randn(2, 1, 2, 2, seed=31), randn(2, 1, 2, 2, seed=32)
    got = mine.p_sample_step(x.clone(), 0, e.clone(), betas.clone(), ab.clone(), z.clone())
    want = ref.p_sample_step(x, 0, e, betas, ab, z)
    if isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, want + betas[0].sqrt() * z):
        raise CheckFailed("at t = 1 (index 0) your step adds σ_1·z: Algorithm 2 takes z = 0 there, so x_0 is the "
                          "mean alone.", [])
    expect_close("x_0", got, want, {"x_t": x, "i": 0, "eps_pred": e, "z": z})


@check("p_sample_step undoes q_sample's mean when ε_θ is the true noise", hidden=True)
def p_consistent(mine, ref) -> None:
    betas, ab = schedule()
    x, e, z = randn(4, 3, 2, 2, seed=40), randn(4, 3, 2, 2, seed=41), torch.zeros(4, 3, 2, 2, dtype=torch.float64)
    for i in (1, 10, 99):
        expect_close(f"x_{{t−1}} at index {i}", mine.p_sample_step(x.clone(), i, e.clone(), betas.clone(), ab.clone(), z),
                     ref.p_sample_step(x, i, e, betas, ab, z), {"x_t": x, "i": i, "eps_pred": e, "z": z})


@check("float32 schedule and images, as the lesson trains", hidden=True)
def float32(mine, ref) -> None:
    betas, ab = schedule(torch.float32)
    x0, eps = randn(2, 1, 2, 2, seed=50).float(), randn(2, 1, 2, 2, seed=51).float()
    t = torch.tensor([5, 70])
    expect_close("x_t", mine.q_sample(x0, t, eps, ab), ref.q_sample(x0, t, eps, ab), {"x0": x0, "t": t, "eps": eps},
                 atol=1e-6)
