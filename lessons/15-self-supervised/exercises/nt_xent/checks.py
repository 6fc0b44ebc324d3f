"""Checks of nt_xent: cosine similarity (scaling a view changes nothing), a 0-d loss whose
value is a slow loop over the pairs written from the equation, the anchor left out of its
own denominator, every 2N anchor averaged; hidden: a small temperature in float32 (no
overflow), the gradient against autograd's of the reference."""

import math

import torch
import torch.nn.functional as F

from dlcourse_tui.exercises.checking import CheckFailed, check, expect_close, expect_scalar, grad_check, randn, same_as


def views(n: int = 4, d: int = 3, seed: int = 0):
    return randn(n, d, seed=seed), randn(n, d, seed=seed + 1)  # (N, d), (N, d)


def call(mine, z1, z2, t, inputs):
    return expect_scalar("loss", mine.nt_xent(z1.clone(), z2.clone(), t), inputs)


def slow_loss(z1, z2, t, *, skip_self: bool = True, anchors: int | None = None):
    """The equation term by term: ℓ(i, j) = −log exp(s_ij/τ) / Σ_{k≠i} exp(s_ik/τ), mean over the anchors."""
    z = torch.cat([z1, z2])  # (2N, d)
    n2 = z.shape[0]
    s = [[float(F.cosine_similarity(z[i], z[k], dim=0)) for k in range(n2)] for i in range(n2)]
    terms = []
    for i in range(n2 if anchors is None else anchors):
        j = (i + n2 // 2) % n2
        den = sum(math.exp(s[i][k] / t) for k in range(n2) if k != i or not skip_self)
        terms.append(-math.log(math.exp(s[i][j] / t) / den))
    return torch.tensor(sum(terms) / len(terms), dtype=torch.float64)


@check("cosine similarity: scaling the views (by 10 and by 0.1) leaves the loss as it was")
def cosine(mine, ref) -> None:
    z1, z2 = views(seed=3)
    inputs = {"z1": z1, "z2": z2, "temperature": 0.5}
    plain = call(mine, z1, z2, 0.5, inputs)
    scaled = call(mine, z1 * 10, z2 * 0.1, 0.5, {"z1": z1 * 10, "z2": z2 * 0.1, "temperature": 0.5})
    if not same_as(scaled, plain):
        raise CheckFailed("the loss changes when the views are scaled: s is the cosine similarity, so normalise each "
                          "row to unit length (F.normalize(z, dim=1)) before the dot products.",
                          [f"loss of z1, z2: {float(plain):.6g}", f"loss of 10·z1, 0.1·z2: {float(scaled):.6g}"])


@check("returns a 0-d loss equal to the equation summed pair by pair (N = 4, τ = 0.5)")
def values(mine, ref) -> None:
    z1, z2 = views(seed=0)
    inputs = {"z1": z1, "z2": z2, "temperature": 0.5}
    got = call(mine, z1, z2, 0.5, inputs)
    if same_as(got, slow_loss(z1, z2, 0.5, skip_self=False)):
        raise CheckFailed("your loss keeps k = i in the denominator: a view's similarity to itself (always 1/τ, the "
                          "largest) is not a negative; mask the diagonal of the similarity matrix with −inf.", [])
    if same_as(got, slow_loss(z1, z2, 0.5, anchors=4)):
        raise CheckFailed("your loss is the mean over the first N anchors only: each of the 2N views is an anchor, "
                          "with its positive the other view of its image (i + N, and i − N for the second half).", [])
    if same_as(got, slow_loss(z1, z2, 1.0)):
        raise CheckFailed("your loss is the one for τ = 1: divide every similarity by the temperature.", [])
    expect_close("loss", got, slow_loss(z1, z2, 0.5), inputs)


@check("matches the reference on a larger batch (N = 16, d = 8, τ = 0.2)")
def larger(mine, ref) -> None:
    z1, z2 = views(16, 8, seed=5)
    inputs = {"z1": z1, "z2": z2, "temperature": 0.2}
    expect_close("loss", call(mine, z1, z2, 0.2, inputs), ref.nt_xent(z1, z2, 0.2), inputs)


@check("τ = 0.01 in float32: no overflow (exp(1/τ) = exp(100) is beyond float32)", hidden=True)
def small_temperature(mine, ref) -> None:
    z1, z2 = (z.float() for z in views(8, 4, seed=7))
    inputs = {"z1": z1, "z2": z2, "temperature": 0.01}
    expect_close("loss", call(mine, z1, z2, 0.01, inputs), ref.nt_xent(z1, z2, 0.01), inputs, atol=1e-3, rtol=1e-4)


@check("the gradient with respect to both views equals autograd's through the reference (float64)", hidden=True)
def gradient(mine, ref) -> None:
    z1, z2 = views(6, 5, seed=9)
    inputs = {"z1": z1, "z2": z2, "temperature": 0.3}
    a1, a2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    mine.nt_xent(a1, a2, 0.3).backward()
    b1, b2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    ref.nt_xent(b1, b2, 0.3).backward()
    for name, got, want in (("dz1", a1.grad, b1.grad), ("dz2", a2.grad, b2.grad)):
        if got is None:
            raise CheckFailed(f"no gradient reached {name[1:]}: build the loss from torch operations on the inputs "
                              "(no .detach(), .item() or .numpy()).", [])
        grad_check(name, got, want, inputs, against="autograd through the reference")
