"""Checks of mlp_backward: keys and shapes, then every gradient against autograd in float64
(relu and tanh), and hidden ones (one example, a wider layer)."""

import torch
import torch.nn.functional as F

from dlcourse_tui.exercises.checking import CheckFailed, check, expect_tensor, grad_check, randn, seeded

KEYS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias")


def example(n: int, d: int, h: int, c: int, seed: int):
    shapes = {"fc1.weight": (h, d), "fc1.bias": (h,), "fc2.weight": (h, h), "fc2.bias": (h,),
              "fc3.weight": (c, h), "fc3.bias": (c,)}
    params = {k: randn(*s, seed=seed + i) for i, (k, s) in enumerate(shapes.items())}
    x = randn(n, d, seed=seed + 10)
    y = torch.randint(0, c, (n,), generator=seeded(seed + 11))
    return x, y, params


def autograd_grads(x, y, params, activation):
    """∂(mean cross-entropy)/∂θ by autograd: the float64 truth the check compares with."""
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    act = torch.relu if activation == "relu" else torch.tanh
    h1 = act(x @ p["fc1.weight"].T + p["fc1.bias"])
    h2 = act(h1 @ p["fc2.weight"].T + p["fc2.bias"])
    F.cross_entropy(h2 @ p["fc3.weight"].T + p["fc3.bias"], y).backward()
    return {k: v.grad for k, v in p.items()}


def compare(mine, n, d, h, c, seed, activation, shapes_only=False) -> None:
    x, y, params = example(n, d, h, c, seed)
    got = mine.mlp_backward(x.clone(), y.clone(), {k: v.clone() for k, v in params.items()}, activation)
    inputs = {"x": x, "y": y, "activation": activation, "params": f"{len(params)} tensors (see the docstring)"}
    if not isinstance(got, dict) or set(got) != set(KEYS):
        have = sorted(got) if isinstance(got, dict) else type(got).__name__
        raise CheckFailed(f"mlp_backward should return a dict with the keys {', '.join(KEYS)}; it returned {have}.")
    want = autograd_grads(x, y, params, activation)
    for k in reversed(KEYS):  # from the loss down: the first wrong layer is where to look
        expect_tensor(k, got[k], params[k].shape, inputs)
        if not shapes_only:
            grad_check(k, got[k], want[k], inputs, factors={"N": n}, against="autograd")


@check("returns a gradient of each parameter's shape")
def shapes(mine, ref) -> None:
    compare(mine, 4, 3, 5, 2, seed=0, activation="relu", shapes_only=True)


@check("every gradient matches autograd (relu, float64)")
def relu(mine, ref) -> None:
    compare(mine, 6, 3, 5, 4, seed=20, activation="relu")


@check("every gradient matches autograd (tanh, float64)")
def tanh(mine, ref) -> None:
    compare(mine, 6, 2, 4, 3, seed=40, activation="tanh")


@check("one example", hidden=True)
def one(mine, ref) -> None:
    compare(mine, 1, 2, 3, 2, seed=60, activation="relu")


@check("a batch of 32 with 16 hidden units and 10 classes", hidden=True)
def wide(mine, ref) -> None:
    compare(mine, 32, 8, 16, 10, seed=80, activation="tanh")
