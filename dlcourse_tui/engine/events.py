"""What a run tells its listeners: frozen dataclasses, emitted in this order.

RunStarted, then per log window StepEnded, per epoch EpochEnded and Evaluated,
PictureReady and TableReady whenever a task produces one, and last exactly one of
RunFinished (completed or stopped) or RunFailed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class RunStarted:
    """The run is set up and about to take its first (or resumed) step."""

    run_id: str
    config: dict[str, Any]
    device: str
    num_params: int
    steps_per_epoch: int
    total_steps: int
    start_step: int
    resumed: bool
    run_dir: str = ""  # the run's folder, when a run store keeps one
    threads: str = ""  # the CPU threads it trains with and why, e.g. "2 (timed 5 steps each: ...)"


@dataclass(frozen=True)
class StepEnded:
    """Mean training metrics over the steps since the last StepEnded (read back in one go)."""

    step: int
    epoch: int
    metrics: dict[str, float]
    samples_per_sec: float
    elapsed: float


@dataclass(frozen=True)
class EpochEnded:
    """Mean training metrics over one whole epoch."""

    epoch: int
    step: int
    metrics: dict[str, float]
    elapsed: float


@dataclass(frozen=True)
class Evaluated:
    """Metrics on the validation split after an epoch."""

    epoch: int
    step: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class PictureReady:
    """A ready-made picture: (H, W, 3) uint8 pixels, computed on the worker thread."""

    name: str
    title: str
    epoch: int
    pixels: "np.ndarray" = field(repr=False)


@dataclass(frozen=True)
class TableReady:
    """A small table the lesson wants shown (a gradient check, a comparison)."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class RunFinished:
    """The run ended on its own ("completed") or on request ("stopped", checkpoint saved)."""

    status: Literal["completed", "stopped"]
    step: int
    epoch: int
    metrics: dict[str, float]
    elapsed: float


@dataclass(frozen=True)
class RunFailed:
    """The run failed; message is a sentence for a learner, traceback is for the run folder."""

    message: str
    step: int  # the step the message names: the one that raised or diverged (else the last one done)
    traceback: str = ""


Event = Union[RunStarted, StepEnded, EpochEnded, Evaluated, PictureReady, TableReady, RunFinished, RunFailed]
Callback = Callable[[Event], None]
