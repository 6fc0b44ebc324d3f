"""How many CPU threads a run trains with: measured, not guessed.

Whether splitting each operation over the cores pays depends on the model and the
machine, not on a parameter count: on a 2-core machine a CNN's step was 1.5x faster on
2 threads and a diffusion U-Net's 1.2x, while a 4k-parameter MLP ran 10-50x slower (its
operations are too short to split, and OpenMP threads waiting on each other cost more
than they give when the cores are busy). So a CPU run times a few of its own training
steps with each choice, interleaved so that a change in the machine's load hits every
choice alike, and keeps the fastest.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

CORES = torch.get_num_threads()  # torch's own choice (one per physical core), before any run changes it
TIMED_STEPS = 5  # per choice, after one untimed warm-up step each
BUDGET_S = 3.0  # fewer timed steps when a step is slow (a large model): about this long in all


@dataclass(frozen=True)
class ThreadChoice:
    """The threads a run trains with, and why, in words for its header."""

    threads: int
    reason: str


def measure_threads(step: Callable[[], None], options: Sequence[int] = (1, CORES)) -> ThreadChoice:
    """The fastest of `options` for `step` (one training step), with the timings as its reason."""
    options = sorted(set(options))
    if len(options) == 1:
        return ThreadChoice(options[0], f"{options[0]} (the only choice here)")
    times: dict[int, list[float]] = {n: [] for n in options}
    for n in options:  # warm-up: first-call allocations and kernel choices
        torch.set_num_threads(n)
        times[n].append(_timed(step))
    per_round = sum(times[n][0] for n in options)
    rounds = max(1, min(TIMED_STEPS, int(BUDGET_S / max(per_round, 1e-6))))
    for n in options:
        times[n].clear()
    for r in range(rounds):
        for n in options:
            torch.set_num_threads(n)
            times[n].append(_timed(step))
        if r >= 1 and _clear_winner(times):
            rounds = r + 1
            break
    median = {n: statistics.median(t) for n, t in times.items()}
    best = min(options, key=lambda n: median[n])
    timings = ", ".join(f"{n} → {median[n] * 1000:.1f} ms" for n in options)
    return ThreadChoice(best, f"{best} (timed {rounds} step{'s' * (rounds != 1)} each: {timings} a step)")


def _clear_winner(times: dict[int, list[float]]) -> bool:
    """Whether one choice's slowest step beat every other choice's fastest by half again."""
    best = min(times, key=lambda n: max(times[n]))
    return all(max(times[best]) * 1.5 < min(t) for n, t in times.items() if n != best)


def _timed(step: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0
