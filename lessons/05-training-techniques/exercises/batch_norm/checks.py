"""Checks of batch_norm_forward and batch_norm_backward: values against F.batch_norm, the
running averages, gradient checks in float64 in both modes, and hidden ones."""

import torch.nn.functional as F

from dlcourse_tui.exercises.checking import (CheckFailed, check, expect_close, expect_tensor, grad_check, inputs_lines,
                                             numeric_gradient, randn, same_as, unpack)


def example(n: int, c: int, h: int, seed: int):
    x = randn(n, c, h, h, seed=seed) * 2 + 1
    gamma, beta = randn(c, seed=seed + 1), randn(c, seed=seed + 2)
    rm, rv = randn(c, seed=seed + 3) * 0.1, randn(c, seed=seed + 4).abs() + 0.5
    return x, gamma, beta, rm, rv


def forward(fn, x, gamma, beta, rm, rv, training):
    out = fn.batch_norm_forward(x, gamma, beta, rm, rv, training, 0.1, 1e-5)
    return unpack(out, ("y", "cache"), "batch_norm_forward")


def ins(x, gamma, beta, rm, rv, training):
    return {"x": x, "gamma": gamma, "beta": beta, "running_mean": rm, "running_var": rv, "training": training}


def forward_values(mine, training: bool, seed: int) -> None:
    x, gamma, beta, rm, rv = example(3, 2, 2, seed)
    inputs = ins(x, gamma, beta, rm, rv, training)
    my_rm, my_rv = rm.clone(), rv.clone()
    y, _ = forward(mine, x.clone(), gamma, beta, my_rm, my_rv, training)
    want_rm, want_rv = rm.clone(), rv.clone()
    want = F.batch_norm(x, want_rm, want_rv, gamma, beta, training=training, momentum=0.1, eps=1e-5)
    expect_close("y", y, want, inputs)
    expect_close("running_mean (after the call)", my_rm, want_rm, inputs)
    m = x.numel() // x.shape[1]
    if training and same_as(my_rv, 0.9 * rv + 0.1 * x.var(dim=(0, 2, 3), unbiased=False)):
        raise CheckFailed(f"running_var averages the biased σ²; the running average keeps the unbiased one, "
                          f"σ²·M/(M − 1) with M = N·H·W = {m}, as PyTorch does.", inputs_lines(inputs))
    expect_close("running_var (after the call)", my_rv, want_rv, inputs)


def backward_check(mine, ref, training: bool, seed: int) -> None:
    x, gamma, beta, rm, rv = example(2, 2, 2, seed)
    dout = randn(*x.shape, seed=seed + 9)
    inputs = {**ins(x, gamma, beta, rm, rv, training), "dout": dout}
    _, cache = forward(mine, x.clone(), gamma.clone(), beta.clone(), rm.clone(), rv.clone(), training)
    dx, dgamma, dbeta = unpack(mine.batch_norm_backward(dout.clone(), cache), ("dx", "dgamma", "dbeta"),
                               "batch_norm_backward")
    xx, gg, bb = x.clone(), gamma.clone(), beta.clone()
    f = lambda: ref.batch_norm_forward(xx, gg, bb, rm.clone(), rv.clone(), training)[0]  # noqa: E731
    m = x.numel() // x.shape[1]
    if training and same_as(dx, dout * (gamma / (x.var(dim=(0, 2, 3), unbiased=False) + 1e-5).sqrt())[None, :, None, None]):
        raise CheckFailed("dx = dout · γ/σ̂ treats μ and σ² as constants, as in evaluation; in training they are "
                          "computed from x, and the two extra terms of the formula come from them.", inputs_lines(inputs))
    grad_check("dbeta", dbeta, numeric_gradient(f, bb, dout), inputs)
    grad_check("dgamma", dgamma, numeric_gradient(f, gg, dout), inputs)
    grad_check("dx", dx, numeric_gradient(f, xx, dout), inputs, factors={"M": m})


@check("training mode: y matches F.batch_norm, and the running averages are updated")
def train_forward(mine, ref) -> None:
    forward_values(mine, True, seed=0)


@check("evaluation mode: y uses the running averages, which stay as they were")
def eval_forward(mine, ref) -> None:
    forward_values(mine, False, seed=10)


@check("training mode: dx, dgamma, dbeta pass gradient checks (float64)")
def train_backward(mine, ref) -> None:
    backward_check(mine, ref, True, seed=20)


@check("evaluation mode: dx, dgamma, dbeta pass gradient checks (float64)")
def eval_backward(mine, ref) -> None:
    backward_check(mine, ref, False, seed=30)


@check("a batch of 8 with 3 channels of 4×4: forward and backward against autograd", hidden=True)
def larger(mine, ref) -> None:
    x, gamma, beta, rm, rv = example(8, 3, 4, seed=40)
    dout = randn(*x.shape, seed=49)
    inputs = {**ins(x, gamma, beta, rm, rv, True), "dout": dout}
    y, cache = forward(mine, x.clone(), gamma.clone(), beta.clone(), rm.clone(), rv.clone(), True)
    xx, gg, bb = (t.clone().requires_grad_(True) for t in (x, gamma, beta))
    want = F.batch_norm(xx, rm.clone(), rv.clone(), gg, bb, training=True)
    (want * dout).sum().backward()
    expect_close("y", y, want.detach(), inputs)
    dx, dgamma, dbeta = unpack(mine.batch_norm_backward(dout.clone(), cache), ("dx", "dgamma", "dbeta"),
                               "batch_norm_backward")
    grad_check("dx", dx, xx.grad, inputs, against="autograd", factors={"M": 128})
    grad_check("dgamma", dgamma, gg.grad, inputs, against="autograd")


@check("a channel of constant values is normalised with ε, not divided by 0", hidden=True)
def constant(mine, ref) -> None:
    x, gamma, beta, rm, rv = example(2, 2, 3, seed=50)
    x[:, 1] = 3.0
    y, _ = forward(mine, x.clone(), gamma, beta, rm.clone(), rv.clone(), True)
    want = F.batch_norm(x, rm.clone(), rv.clone(), gamma, beta, training=True)
    expect_close("y", expect_tensor("y", y, x.shape, ins(x, gamma, beta, rm, rv, True)), want,
                 ins(x, gamma, beta, rm, rv, True))
