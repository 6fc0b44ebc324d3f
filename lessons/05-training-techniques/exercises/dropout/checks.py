"""Checks of dropout: survivors scaled by 1/(1 − p), the share dropped close to p, the
identity in evaluation, the generator used; hidden: p = 0, the mean kept."""

import torch

from dlcourse_tui.exercises.checking import CheckFailed, check, expect_close, expect_tensor, randn


def run(mine, x, p, training, seed=0):
    g = torch.Generator(device=x.device).manual_seed(seed)
    return expect_tensor("out", mine.dropout(x.clone(), p, training, g), x.shape, {"x": x, "p": p, "training": training})


@check("training: each value is 0 or x / (1 − p)")
def survivors(mine, ref) -> None:
    x = randn(4, 5, seed=0).abs() + 0.5  # no zeros of its own
    out = run(mine, x, 0.5, True)
    kept = out != 0
    inputs = {"x": x, "p": 0.5, "training": True}
    if not kept.any():
        raise CheckFailed("out is all zeros with p = 0.5: keep each value with probability 1 − p.", [])
    if torch.allclose(out[kept], x[kept]):
        raise CheckFailed("the kept values are x itself, not x / (1 − p): inverted dropout scales the survivors "
                          "while training, so that evaluation needs no change.", [])
    expect_close("out (the kept values)", out[kept], x[kept] / 0.5, inputs)


@check("training: about p of 10000 values are zeroed (p = 0.3)")
def share(mine, ref) -> None:
    x = torch.ones(100, 100, dtype=torch.float64)
    dropped = float((run(mine, x, 0.3, True) == 0).double().mean())
    if abs(dropped - 0.3) > 0.03:
        hint = " That is 1 − p: is the mask the other way round (u < p keeps)?" if abs(dropped - 0.7) < 0.03 else ""
        raise CheckFailed(f"{dropped:.1%} of the values were zeroed with p = 0.3; expected about 30%.{hint}", [])


@check("evaluation: out is x, unscaled")
def evaluation(mine, ref) -> None:
    x = randn(3, 4, seed=1)
    expect_close("out", run(mine, x, 0.4, False), x, {"x": x, "p": 0.4, "training": False}, atol=0, rtol=0,
                 factors={"1/(1 − p)": (1 / 0.6, "inverted dropout scales while training only; evaluation gives x back.")})


@check("the mask comes from the generator given (the same seed, the same mask)")
def uses_generator(mine, ref) -> None:
    x = torch.ones(8, 8, dtype=torch.float64)
    a, b = run(mine, x, 0.5, True, seed=7), run(mine, x, 0.5, True, seed=7)
    torch.manual_seed(123)  # a generator ignored would show here
    c = run(mine, x, 0.5, True, seed=7)
    if not (torch.equal(a, b) and torch.equal(a, c)):
        raise CheckFailed("two calls with generators of the same seed dropped different values: draw the mask with "
                          "torch.rand(..., generator=generator), not from torch's global random numbers.", [])


@check("p = 0 keeps everything", hidden=True)
def p_zero(mine, ref) -> None:
    x = randn(5, 3, seed=2)
    expect_close("out", run(mine, x, 0.0, True), x, {"x": x, "p": 0.0, "training": True}, atol=0, rtol=0)


@check("the mean of out is close to the mean of x (p = 0.8)", hidden=True)
def mean_kept(mine, ref) -> None:
    x = torch.full((200, 100), 2.0, dtype=torch.float64)
    mean = float(run(mine, x, 0.8, True, seed=3).mean())
    if abs(mean - 2.0) > 0.15:
        raise CheckFailed(f"the mean of out is {mean:.3f}, the input's 2: divide the kept values by 1 − p, not by p.", [])
