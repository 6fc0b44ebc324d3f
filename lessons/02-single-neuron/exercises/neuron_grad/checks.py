"""Checks of neuron_loss_and_grad: shapes, the loss, gradient checks of dw and db in float64
with and without weight decay, and hidden ones (a confident neuron, one point)."""

import torch

from dlcourse_tui.exercises.checking import (CheckFailed, check, expect_close, expect_scalar, expect_tensor, grad_check,
                                             numeric_gradient, randn, same_as, seeded, unpack)


def example(n: int, f: int, seed: int, scale: float = 1.0):
    w, b = randn(f, seed=seed) * scale, randn(seed=seed + 1)
    X = randn(n, f, seed=seed + 2)
    y = torch.randint(0, 2, (n,), generator=seeded(seed + 3))
    return w, b, X, y


def call(mine, w, b, X, y, alpha):
    out = mine.neuron_loss_and_grad(w.clone(), b.clone(), X.clone(), y.clone(), alpha)
    return unpack(out, ("loss", "dw", "db"), "neuron_loss_and_grad")


def inputs(w, b, X, y, alpha):
    return {"w": w, "b": b, "X": X, "y": y, "alpha": alpha}


@check("returns a 0-d loss, dw of w's shape and a 0-d db")
def shapes(mine, ref) -> None:
    w, b, X, y = example(5, 3, seed=0)
    loss, dw, db = call(mine, w, b, X, y, 0.1)
    ins = inputs(w, b, X, y, 0.1)
    expect_scalar("loss", loss, ins)
    expect_tensor("dw", dw, w.shape, ins)
    expect_scalar("db", db, ins)


@check("the loss is the reference's, with weight decay 0.3")
def loss_value(mine, ref) -> None:
    w, b, X, y = example(6, 3, seed=1)
    loss, _, _ = call(mine, w, b, X, y, 0.3)
    expect_close("loss", expect_scalar("loss", loss, {}), ref.neuron_loss_and_grad(w, b, X, y, 0.3)[0],
                 inputs(w, b, X, y, 0.3), factors={"N": 6})


def gradient(mine, ref, alpha: float, seed: int, n: int = 5, f: int = 3) -> None:
    w, b, X, y = example(n, f, seed=seed)
    _, dw, db = call(mine, w, b, X, y, alpha)
    ww, bb = w.clone(), b.clone()
    loss = lambda: ref.neuron_loss_and_grad(ww, bb, X, y, alpha)[0]  # noqa: E731
    ins = inputs(w, b, X, y, alpha)
    if alpha and same_as(dw, ref.neuron_loss_and_grad(w, b, X, y, 0.0)[1]):
        raise CheckFailed(f"dw leaves out weight decay: with alpha = {alpha:g} it is (1/N) Xᵀ(σ(z) − y) + α·w.")
    grad_check("dw", dw, numeric_gradient(loss, ww), ins, factors={"N": n})
    grad_check("db", expect_scalar("db", db, ins).reshape(()), numeric_gradient(loss, bb), ins, factors={"N": n})


@check("dw and db pass a gradient check without weight decay (float64)")
def grad_plain(mine, ref) -> None:
    gradient(mine, ref, 0.0, seed=2)


@check("dw and db pass a gradient check with weight decay α = 0.5")
def grad_decay(mine, ref) -> None:
    gradient(mine, ref, 0.5, seed=3)


@check("a confident neuron (|z| ≈ 100) gives a finite loss", hidden=True)
def confident(mine, ref) -> None:
    w, b, X, y = example(8, 2, seed=4, scale=100.0)
    loss, dw, _ = call(mine, w, b, X, y, 0.0)
    want, want_dw, _ = ref.neuron_loss_and_grad(w, b, X, y, 0.0)
    expect_close("loss", expect_scalar("loss", loss, inputs(w, b, X, y, 0.0)), want, inputs(w, b, X, y, 0.0), rtol=1e-6)
    expect_close("dw", dw, want_dw, inputs(w, b, X, y, 0.0))


@check("one point, ten features", hidden=True)
def one_point(mine, ref) -> None:
    gradient(mine, ref, 0.1, seed=5, n=1, f=10)
