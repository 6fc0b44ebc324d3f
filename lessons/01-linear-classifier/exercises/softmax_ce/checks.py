"""Checks of softmax_cross_entropy: shapes, values against the reference, a float64
gradient check by central differences, and hidden ones (large scores, one example)."""

import torch

from dlcourse_tui.exercises.checking import (check, expect_close, expect_scalar, expect_tensor, grad_check,
                                             numeric_gradient, randn, seeded, unpack)


def example(n: int, c: int, seed: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    scores = randn(n, c, seed=seed) * scale  # (N, C)
    y = torch.randint(0, c, (n,), generator=seeded(seed + 1))  # (N,)
    return scores, y


def call(mine, scores, y):
    return unpack(mine.softmax_cross_entropy(scores.clone(), y.clone()), ("loss", "dscores"), "softmax_cross_entropy")


@check("returns a 0-d loss and dscores of the scores' shape")
def shapes(mine, ref) -> None:
    scores, y = example(4, 3, seed=0)
    loss, d = call(mine, scores, y)
    expect_scalar("loss", loss, {"scores": scores, "y": y})
    expect_tensor("dscores", d, scores.shape, {"scores": scores, "y": y})


@check("the loss is the reference's on 4 examples of 3 classes")
def loss_value(mine, ref) -> None:
    scores, y = example(4, 3, seed=1)
    loss, _ = call(mine, scores, y)
    want, _ = ref.softmax_cross_entropy(scores, y)
    expect_close("loss", expect_scalar("loss", loss, {"scores": scores, "y": y}), want, {"scores": scores, "y": y},
                 factors={"N": 4, "C": 3})


@check("dscores is the reference's")
def grad_value(mine, ref) -> None:
    scores, y = example(4, 5, seed=2)
    _, d = call(mine, scores, y)
    _, want = ref.softmax_cross_entropy(scores, y)
    expect_close("dscores", d, want, {"scores": scores, "y": y}, factors={"N": 4, "C": 5})


@check("dscores passes a gradient check (float64, central differences)")
def grad_numeric(mine, ref) -> None:
    scores, y = example(3, 4, seed=3)
    _, d = call(mine, scores, y)
    x = scores.clone()
    numeric = numeric_gradient(lambda: ref.softmax_cross_entropy(x, y)[0], x)
    grad_check("dscores", d, numeric, {"scores": scores, "y": y}, factors={"N": 3})


@check("large scores (hundreds) give finite values", hidden=True)
def large(mine, ref) -> None:
    scores, y = example(6, 4, seed=4, scale=400.0)
    loss, d = call(mine, scores, y)
    want_loss, want_d = ref.softmax_cross_entropy(scores, y)
    expect_close("loss", expect_scalar("loss", loss, {"scores": scores, "y": y}), want_loss, {"scores": scores, "y": y})
    expect_close("dscores", d, want_d, {"scores": scores, "y": y})


@check("one example, ten classes, float32", hidden=True)
def single(mine, ref) -> None:
    scores, y = example(1, 10, seed=5)
    scores = scores.float()
    loss, d = call(mine, scores, y)
    want_loss, want_d = ref.softmax_cross_entropy(scores, y)
    expect_close("loss", expect_scalar("loss", loss, {"scores": scores, "y": y}), want_loss, {"scores": scores, "y": y},
                 atol=1e-5)
    expect_close("dscores", d, want_d, {"scores": scores, "y": y}, atol=1e-6)


@check("a batch of 64, 10 classes", hidden=True)
def batch(mine, ref) -> None:
    scores, y = example(64, 10, seed=6, scale=3.0)
    _, d = call(mine, scores, y)
    expect_close("dscores", d, ref.softmax_cross_entropy(scores, y)[1], {"scores": scores, "y": y}, factors={"N": 64})
