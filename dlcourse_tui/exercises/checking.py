"""What an exercise's checks.py is written with: `@check` marks a check (visible or hidden),
and the expect_* helpers raise CheckFailed with the input, the expected and the actual
values, and a hint when the difference has a recognisable shape (a factor of N, a sign,
a transpose). Gradient checks compare in float64 and judge the relative error

    rel = ‖analytic − numeric‖ / (‖analytic‖ + ‖numeric‖)

against GOOD (below: right) and WRONG (above: wrong); in between it is close but not right,
and the message says what that usually means. Runs in the check worker, with torch."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

GOOD = 1e-7  # relative error below which a float64 gradient is right
WRONG = 1e-2  # relative error above which it is wrong
MIDDLE = ("between 1e-7 and 1e-2: close but not right. That usually means float32 arithmetic "
          "somewhere (keep the inputs' float64: no .float(), no torch.tensor(...) without dtype), a small "
          "term left out or scaled wrong (weight decay, ε), or a finite difference across a kink (ReLU at 0, a max).")
SHOWN = 12  # values of a tensor printed in full; larger ones by shape and a few values

NOTES: dict[str, tuple[float, str]] = {}  # gradient name -> (its worst relative error, compared against), for a passing run
HIDDEN = False  # set by the worker while a hidden check runs: inputs are shown by shape only


@dataclass(frozen=True)
class Check:
    """One check of an exercise: a title the learner reads, and the function that runs it."""

    title: str
    hidden: bool
    run: Callable[[Any, Any], None]  # (the learner's module, the reference module) -> None or CheckFailed


def check(title: str, *, hidden: bool = False) -> Callable[[Callable], Callable]:
    """Mark `f(mine, ref)` as a check; checks run in the order they are written."""
    def mark(f: Callable) -> Callable:
        f.dlc_check = Check(title, hidden, f)  # type: ignore[attr-defined]
        return f
    return mark


def checks_of(module: Any) -> list[Check]:
    """The checks a checks.py module defines, in the order written."""
    return [v.dlc_check for v in vars(module).values() if callable(v) and hasattr(v, "dlc_check")]


class CheckFailed(Exception):
    """A check that failed: one line saying what, then the lines that show it."""

    def __init__(self, what: str, lines: list[str] | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.lines = lines or []


# -- showing values -----------------------------------------------------------------------

def value_text(v: Any) -> str:
    """A value as the learner wrote it: a small tensor in full, a large one by shape and its first values."""
    if isinstance(v, Tensor):
        head = f"tensor of shape {tuple(v.shape)}, {str(v.dtype).replace('torch.', '')}"
        if v.numel() == 0:
            return head
        if v.numel() <= SHOWN and not HIDDEN:
            return f"{head}: {_round(v.detach().cpu().tolist())}"
        if HIDDEN:
            return head
        flat = v.detach().flatten()[:6].cpu().tolist()
        return f"{head}: first values {_round(flat)} …"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (tuple, list)) and len(v) <= 6 and not all(isinstance(x, (int, float)) for x in v):
        return "(" + ", ".join(value_text(x) for x in v) + ")"
    return repr(v)


def _round(x: Any) -> Any:
    if isinstance(x, list):
        return [_round(v) for v in x]
    return float(f"{x:.5g}") if isinstance(x, float) else x


def inputs_lines(inputs: dict[str, Any]) -> list[str]:
    """'input:  name = value' lines."""
    label = "input (hidden check):" if HIDDEN else "input:"
    return [f"{label if i == 0 else ' ' * len(label)} {k} = {value_text(v)}" for i, (k, v) in enumerate(inputs.items())]


# -- expectations ---------------------------------------------------------------------------

def expect_tensor(name: str, got: Any, shape: tuple[int, ...] | torch.Size, inputs: dict[str, Any]) -> Tensor:
    """`got` is a tensor of `shape` with only finite values, else CheckFailed saying which it is not."""
    shape = tuple(shape)
    if not isinstance(got, Tensor):
        raise CheckFailed(f"{name} should be a tensor of shape {shape}, but your function gave {type(got).__name__} "
                          f"{value_text(got)[:80]}", inputs_lines(inputs))
    if tuple(got.shape) != shape:
        hint = ""
        if len(shape) == 2 and tuple(got.shape) == shape[::-1]:
            hint = " It is transposed: check the order of the factors of a matrix product, or a missing .T."
        elif got.numel() == math.prod(shape):
            hint = " It has the right number of values: a reshape or a sum over the wrong dimension?"
        elif len(got.shape) < len(shape):
            hint = " A dimension is missing: a sum or mean that should keep it (keepdim=True), or should not happen?"
        raise CheckFailed(f"{name} has shape {tuple(got.shape)}, but the check expected {shape}.{hint}", inputs_lines(inputs))
    if got.is_floating_point() and not torch.isfinite(got).all():
        bad = int((~torch.isfinite(got)).sum())
        kind = "NaN" if torch.isnan(got).any() else "inf"
        raise CheckFailed(f"{name} contains {kind} ({bad} of {got.numel()} values). exp() of large numbers overflows "
                          "(subtract the maximum first), log(0) is -inf, and 0/0 is NaN.", inputs_lines(inputs))
    return got


def expect_scalar(name: str, got: Any, inputs: dict[str, Any]) -> Tensor:
    """A 0-d tensor (a Python float is accepted as one)."""
    if isinstance(got, (float, int)) and not isinstance(got, bool):
        got = torch.tensor(float(got), dtype=torch.float64)
    return expect_tensor(name, got, (), inputs)


def expect_close(name: str, got: Any, want: Tensor, inputs: dict[str, Any], *, atol: float = 1e-6,
                 rtol: float = 1e-5, factors: dict[str, float | tuple[float, str]] | None = None) -> None:
    """`got` matches the reference `want` within atol + rtol·|want|, else CheckFailed with
    the input, both values, the largest difference and a hint. `factors` names numbers that
    a common mistake multiplies by (e.g. {"N": batch size} for a missing 1/N), each with the
    advice to give (default: a missing 1/label) as (value, advice)."""
    got = expect_tensor(name, got, want.shape, inputs)
    g, w = got.detach().double(), want.detach().double()
    diff = (g - w).abs()
    allowed = atol + rtol * w.abs()
    if bool((diff <= allowed).all()):
        return
    i = int(torch.argmax(diff - allowed))
    where = list(_unravel(i, tuple(w.shape)))
    at = f" at index {where}" if where else ""
    lines = inputs_lines(inputs) + [f"expected: {name} = {value_text(want)}", f"got:      {name} = {value_text(got)}",
                                    f"largest difference {diff.flatten()[i].item():.3g}{at} "
                                    f"(allowed {atol:g} + {rtol:g}·|expected|)"]
    hint = difference_hint(g, w, factors or {})
    raise CheckFailed(f"{name} does not match the reference." + (f" {hint}" if hint else ""), lines)


def same_as(got: Any, other: Tensor) -> bool:
    """Whether `got` is (close to) `other`: what a common mistake would have given."""
    return isinstance(got, Tensor) and got.shape == other.shape and bool(torch.allclose(got.double(), other.double(),
                                                                                        rtol=1e-6, atol=1e-9))


def difference_hint(got: Tensor, want: Tensor, factors: dict) -> str:
    """What a wrong result's relation to the right one suggests, or ''."""
    if want.ndim == 2 and want.shape[0] == want.shape[1] and want.shape[0] > 1 and torch.allclose(got, want.T, rtol=1e-5, atol=1e-8):
        return "It is the transpose of the expected matrix: check the order of the factors, or a missing .T."
    ww = float((want * want).sum())
    if ww == 0:
        return ""
    r = float((got * want).sum()) / ww
    if not math.isfinite(r) or abs(r) < 1e-12 or float((got - r * want).norm()) > 1e-6 * math.sqrt(ww) * max(1.0, abs(r)):
        return ""  # not a multiple of the reference
    if abs(r + 1) < 1e-6:
        return "It is the expected value with its sign flipped."
    for label, factor in factors.items():
        n, advice = factor if isinstance(factor, tuple) else (factor, "")
        named = "" if label == f"{n:g}" else f" ({label} = {n:g})"
        if n != 1 and abs(r - n) < 1e-6 * n:
            return f"It is {n:g} times the expected value{named}: {advice or f'a missing 1/{label}?'}"
        if n != 1 and abs(r - 1 / n) < 1e-6 / n:
            return f"It is the expected value divided by {n:g}{named}: {advice or f'a 1/{label} too many?'}"
    return f"It is {r:.4g} times the expected value: a constant factor is off."


def _unravel(i: int, shape: tuple[int, ...]) -> Iterator[int]:
    out = []
    for n in reversed(shape):
        out.append(i % n)
        i //= n
    return reversed(out)


# -- gradients ------------------------------------------------------------------------------

def numeric_gradient(f: Callable[[], Tensor], x: Tensor, dout: Tensor | None = None, h: float = 1e-6) -> Tensor:
    """∂(Σ f() ⊙ dout)/∂x by central differences, one element of x at a time (x is changed
    in place and put back); f() reads x. Float64 inputs give about 1e-10 of accuracy."""
    grad = torch.zeros_like(x)
    flat, gflat = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + h
        plus = f()
        flat[i] = old - h
        minus = f()
        flat[i] = old
        d = (plus - minus) if dout is None else ((plus - minus) * dout)
        gflat[i] = d.sum() / (2 * h)
    return grad


def relative_error(a: Tensor, b: Tensor) -> float:
    """‖a − b‖ / (‖a‖ + ‖b‖), 0 when both are 0."""
    a, b = a.detach().double(), b.detach().double()
    den = float(a.norm() + b.norm())
    return 0.0 if den == 0 else float((a - b).norm()) / den


def grad_check(name: str, got: Any, want: Tensor, inputs: dict[str, Any], *,
               factors: dict | None = None, against: str = "central differences") -> float:
    """The learner's gradient `got` against `want` (numeric or the reference, float64): the
    relative error, noted when below GOOD, else CheckFailed saying what it means."""
    got = expect_tensor(name, got, want.shape, inputs)
    if got.dtype != torch.float64:
        raise CheckFailed(f"{name} is {str(got.dtype).replace('torch.', '')}, but the inputs were float64: keep their dtype "
                          "(torch.zeros_like(x), x.new_zeros(...)), or the gradient check cannot tell right from rounding.",
                          inputs_lines(inputs))
    rel = relative_error(got, want)
    shown = f"gradient check {name} (float64, against {against}): relative error {rel:.1e}"
    if rel < GOOD:
        NOTES[name] = (max(rel, NOTES.get(name, (0.0, ""))[0]), against)
        return rel
    lines = inputs_lines(inputs) + [f"expected: {name} = {value_text(want)}", f"got:      {name} = {value_text(got)}"]
    if rel > WRONG:
        hint = difference_hint(got.double(), want.double(), factors or {})
        raise CheckFailed(f"{shown}, above {sci(WRONG)}: the gradient is wrong." + (f" {hint}" if hint else ""), lines)
    raise CheckFailed(f"{shown}, {MIDDLE}", lines)


def sci(x: float) -> str:
    """1e-07 written as 1e-7."""
    return f"{x:.0e}".replace("e-0", "e-")


def notes() -> list[str]:
    """The passing gradient checks, one line per gradient with its worst relative error."""
    return [f"gradient check {name} (float64, against {against}): relative error {rel:.1e} (< {sci(GOOD)}: good)"
            for name, (rel, against) in NOTES.items()]


def unpack(result: Any, names: tuple[str, ...], function: str) -> tuple:
    """A function's tuple result with `len(names)` parts, else CheckFailed saying what it returned."""
    if not isinstance(result, tuple) or len(result) != len(names):
        what = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise CheckFailed(f"{function} should return ({', '.join(names)}), but it returned {what}.")
    return result


def seeded(seed: int) -> torch.Generator:
    """A generator for a check's fixed inputs."""
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int) -> Tensor:
    """Fixed float64 normal inputs."""
    return torch.randn(shape, generator=seeded(seed), dtype=torch.float64)
