"""Checks of sgd_step: plain gradient descent, momentum, weight decay, and three steps
against torch.optim.SGD (hidden)."""

import torch

from dlcourse_tui.exercises.checking import CheckFailed, check, expect_close, randn, same_as, unpack

# The first optimiser made in a process imports torch's compiler stack (seconds on a slow
# machine): made here, while checks.py loads, that time is not counted against the learner's.
torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def call(mine, w, dw, v, lr, momentum, wd):
    return unpack(mine.sgd_step(w.clone(), dw.clone(), v.clone(), lr, momentum, wd), ("w_new", "v_new"), "sgd_step")


def compare(mine, ref, shape, lr, momentum, wd, seed, v_zero=False) -> None:
    w, dw = randn(*shape, seed=seed), randn(*shape, seed=seed + 1)
    v = torch.zeros_like(w) if v_zero else randn(*shape, seed=seed + 2)
    inputs = {"w": w, "dw": dw, "velocity": v, "lr": lr, "momentum": momentum, "weight_decay": wd}
    got_w, got_v = call(mine, w, dw, v, lr, momentum, wd)
    want_w, want_v = ref.sgd_step(w, dw, v, lr, momentum, wd)
    if wd and same_as(got_v, ref.sgd_step(w, dw, v, lr, momentum, 0.0)[1]):
        raise CheckFailed("v_new leaves out weight decay: the gradient the step follows is dw + weight_decay · w.")
    if momentum and same_as(got_v, ref.sgd_step(w, dw, v, lr, 0.0, wd)[1]):
        raise CheckFailed("v_new forgets the old velocity: v_new = momentum · v + g.")
    expect_close("v_new", got_v, want_v, inputs)
    expect_close("w_new", got_w, want_w, inputs, factors={"lr": lr})


@check("plain gradient descent: w − lr·dw (no momentum, no weight decay)")
def plain(mine, ref) -> None:
    compare(mine, ref, (2, 3), lr=0.1, momentum=0.0, wd=0.0, seed=0, v_zero=True)


@check("momentum 0.9 carries the velocity")
def with_momentum(mine, ref) -> None:
    compare(mine, ref, (2, 3), lr=0.1, momentum=0.9, wd=0.0, seed=10)


@check("weight decay 0.5 adds α·w to the gradient")
def with_decay(mine, ref) -> None:
    compare(mine, ref, (3,), lr=0.05, momentum=0.0, wd=0.5, seed=20, v_zero=True)


@check("momentum and weight decay together, as the lesson trains")
def both(mine, ref) -> None:
    compare(mine, ref, (2, 4), lr=0.01, momentum=0.9, wd=0.5, seed=30)


@check("three steps follow torch.optim.SGD", hidden=True)
def like_torch(mine, ref) -> None:
    w0 = randn(4, 3, seed=40)
    p = torch.nn.Parameter(w0.clone())
    opt = torch.optim.SGD([p], lr=0.03, momentum=0.9, weight_decay=0.5)
    w, v = w0.clone(), torch.zeros_like(w0)
    for k in range(3):
        g = randn(4, 3, seed=41 + k)
        p.grad = g.clone()
        opt.step()
        w, v = call(mine, w, g, v, 0.03, 0.9, 0.5)
    expect_close("w after 3 steps", w, p.detach(), {"w (start)": w0, "lr": 0.03, "momentum": 0.9, "weight_decay": 0.5})


@check("the inputs are left as they were", hidden=True)
def no_side_effects(mine, ref) -> None:
    w, dw, v = randn(3, seed=50), randn(3, seed=51), randn(3, seed=52)
    keep = (w.clone(), dw.clone(), v.clone())
    mine.sgd_step(w, dw, v, 0.1, 0.9, 0.1)
    if not all(torch.equal(a, b) for a, b in zip((w, dw, v), keep)):
        raise CheckFailed("sgd_step changed its inputs in place: return new tensors (w - lr * v, not w -= ...).")
