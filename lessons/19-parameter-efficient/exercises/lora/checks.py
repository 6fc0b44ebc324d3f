"""Checks of lora_linear and merge_lora: B = 0 gives the frozen layer, the update alone against
the reference (with the two common mistakes named: B·A transposed, the α/r scale missing), the
merge's shape and values, merged and unmerged agreeing; hidden ones with tokens, rank 1, no
bias, and the gradients that reach A and B."""

import torch

from dlcourse_tui.exercises.checking import CheckFailed, check, expect_close, expect_tensor, inputs_lines, randn, same_as


def layer(n: int, d_in: int, d_out: int, r: int, seed: int, lead: tuple[int, ...] = ()):
    x = randn(*lead, n, d_in, seed=seed)  # (..., N, in)
    return (x, randn(d_out, d_in, seed=seed + 1), randn(d_out, seed=seed + 2), randn(r, d_in, seed=seed + 3),
            randn(d_out, r, seed=seed + 4))  # x, W₀, b, A, B


def scale_mistake(what: str, got, base, update, alpha: float, r: int, inputs: dict) -> None:
    """CheckFailed when `got` is base + c · update for a wrong c that a learner often writes."""
    for c, how in ((1.0, "not scaled at all"), (alpha, "scaled by α, not α / r"), (r / alpha, "scaled by r / α")):
        if same_as(got, base + c * update):
            raise CheckFailed(f"your {what} is {how}: the low-rank term is multiplied by α / r "
                              f"(here α = {alpha:g}, r = {r}: {alpha / r:g}).", inputs_lines(inputs))


def call(mine, x, weight, bias, A, B, alpha):
    return mine.lora_linear(x.clone(), weight.clone(), None if bias is None else bias.clone(), A.clone(), B.clone(), alpha)


@check("the update alone (W₀ = 0, no bias): h = (α/r) · x Aᵀ Bᵀ")
def update(mine, ref) -> None:
    x, _, _, A, B = layer(3, 4, 4, 2, seed=10)
    w = torch.zeros(4, 4, dtype=torch.float64)
    alpha, r = 8.0, 2
    inputs = {"x": x, "weight": w, "bias": None, "A": A, "B": B, "alpha": alpha}
    got = expect_tensor("h", call(mine, x, w, None, A, B, alpha), (3, 4), inputs)
    want = ref.lora_linear(x, w, None, A, B, alpha)
    if not same_as(got, want):
        if same_as(got, (alpha / r) * x @ (B @ A)):
            raise CheckFailed("your update is x (B A), the transpose of the right one: h = B (A x) for one column x, "
                              "so a batch of rows x takes x Aᵀ Bᵀ (A first, then B, both transposed).", inputs_lines(inputs))
        scale_mistake("update", got, 0.0, (x @ A.T) @ B.T, alpha, r, inputs)
    expect_close("h", got, want, inputs, factors={"α/r": alpha / r, "α": alpha, "r": float(r)})


@check("with B = 0, lora_linear is the frozen layer x W₀ᵀ + b, of shape (N, out)")
def starts_frozen(mine, ref) -> None:
    x, w, b, A, _ = layer(5, 6, 4, 2, seed=0)
    B = torch.zeros(4, 2, dtype=torch.float64)
    inputs = {"x": x, "weight": w, "bias": b, "A": A, "B": B, "alpha": 4.0}
    got = expect_tensor("h", call(mine, x, w, b, A, B, 4.0), (5, 4), inputs)
    expect_close("h", got, x @ w.T + b, inputs)


@check("merge_lora gives W₀ + (α/r) B A, of shape (out, in)")
def merge(mine, ref) -> None:
    _, w, _, A, B = layer(1, 5, 3, 2, seed=20)
    inputs = {"weight": w, "A": A, "B": B, "alpha": 6.0}
    got = expect_tensor("W", mine.merge_lora(w.clone(), A.clone(), B.clone(), 6.0), (3, 5), inputs)
    scale_mistake("merged update", got, w, B @ A, 6.0, 2, inputs)
    expect_close("W", got, ref.merge_lora(w, A, B, 6.0), inputs, factors={"α/r": 3.0, "α": 6.0, "r": 2.0})


@check("the merged layer x Wᵀ + b gives what lora_linear gives: merging adds no latency and changes nothing")
def merged_equals_unmerged(mine, ref) -> None:
    x, w, b, A, B = layer(6, 5, 3, 2, seed=30)
    inputs = {"x": x, "weight": w, "bias": b, "A": A, "B": B, "alpha": 2.0}
    h = expect_tensor("h", call(mine, x, w, b, A, B, 2.0), (6, 3), inputs)
    merged = expect_tensor("W", mine.merge_lora(w.clone(), A.clone(), B.clone(), 2.0), (3, 5), inputs)
    expect_close("x Wᵀ + b (merged)", x @ merged.T + b, h, inputs)
    expect_close("h", h, ref.lora_linear(x, w, b, A, B, 2.0), inputs)


@check("tokens (batch, T, in), rank 1, no bias", hidden=True)
def tokens(mine, ref) -> None:
    x, w, _, A, B = layer(7, 8, 8, 1, seed=40, lead=(2,))  # x (2, 7, 8)
    inputs = {"x": x, "weight": w, "bias": None, "A": A, "B": B, "alpha": 1.0}
    got = expect_tensor("h", call(mine, x, w, None, A, B, 1.0), (2, 7, 8), inputs)
    expect_close("h", got, ref.lora_linear(x, w, None, A, B, 1.0), inputs)


@check("the gradients that reach A and B are the reference's (nothing detached)", hidden=True)
def gradients(mine, ref) -> None:
    x, w, b, A, B = layer(4, 6, 5, 3, seed=50)
    inputs = {"x": x, "weight": w, "bias": b, "A": A, "B": B, "alpha": 6.0}
    grads = []
    for fn in (mine.lora_linear, ref.lora_linear):
        a, bb = A.clone().requires_grad_(True), B.clone().requires_grad_(True)
        h = fn(x.clone(), w.clone(), b.clone(), a, bb, 6.0)
        if not isinstance(h, torch.Tensor) or not h.requires_grad:
            raise CheckFailed("h does not depend on A and B through autograd: keep them in the computation "
                              "(no .detach(), .item() or torch.no_grad()), or they cannot train.", inputs_lines(inputs))
        dh = randn(*h.shape, seed=51)
        ga, gb = torch.autograd.grad((h * dh).sum(), (a, bb))
        grads.append((ga, gb))
    (ga, gb), (want_a, want_b) = grads
    expect_close("dA", ga, want_a, inputs)
    expect_close("dB", gb, want_b, inputs)
