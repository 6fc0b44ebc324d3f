"""The bridge between a training thread and the UI.

The trainer calls RunHandle.callback on its worker thread. StepEnded metrics go into a
lock-protected buffer (StepBuffer) and every other event into the handle's event list, both
read by the dashboard on a timer, so a run costs the UI nothing per step or epoch; a run's
start and end are also posted to the app as RunEvent messages (post_message is
thread-safe). Nothing here imports torch.
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dlcourse_tui.engine.events import (
    Event, PictureReady, RunFailed, RunFinished, RunStarted, StepEnded,
)

if TYPE_CHECKING:
    from textual.app import App

    from dlcourse_tui.engine.config import RunConfig


@dataclass
class StepPoint:
    """One StepEnded as plain numbers."""

    step: int
    epoch: int
    metrics: dict[str, float]
    samples_per_sec: float
    elapsed: float


class StepBuffer:
    """Append-only, lock-protected list of step points; readers keep their own cursor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: list[StepPoint] = []

    def append(self, point: StepPoint) -> None:
        with self._lock:
            self._points.append(point)

    def __len__(self) -> int:
        with self._lock:
            return len(self._points)

    def since(self, cursor: int) -> tuple[list[StepPoint], int]:
        """The points from index `cursor` on, and the new cursor."""
        with self._lock:
            new = self._points[cursor:]
            return new, len(self._points)


@dataclass
class RunHandle:
    """One run started from the app: its config, its controls and what it said so far."""

    config: "RunConfig"
    app: "App | None" = None
    resume: Any = None  # the RunRecord this run continues (its checkpoint), or None
    then: Any = None  # a RunConfig to start once this run completes (it builds on this one)
    stop_event: threading.Event = field(default_factory=threading.Event)
    pause_event: threading.Event = field(default_factory=threading.Event)
    done_event: threading.Event = field(default_factory=threading.Event)
    steps: StepBuffer = field(default_factory=StepBuffer)
    events: list[Any] = field(default_factory=list)  # every non-step event, in order (worker appends, UI reads)
    run_id: str = ""
    run_path: str = ""
    started: RunStarted | None = None
    final: RunFinished | RunFailed | None = None
    phase: str = "preparing"  # preparing, training, paused, stopping, completed, stopped, failed
    created: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None  # the daemon thread that trains
    diagnoses: list[str] = field(default_factory=list)  # what the ended run's curves say (set before done_event)

    # -- worker thread side ---------------------------------------------------------------
    def callback(self, event: Event) -> None:
        """The trainer's callback (worker thread): steps to the buffer, every other event to
        `events`, which the dashboard reads on its timer; only a run's start and end are also
        posted as messages (they change what the app shows at once). A tiny model ends dozens
        of epochs a second: a message for each woke the UI thread, which took the GIL from the
        trainer each time, to do nothing before the next tick."""
        if isinstance(event, StepEnded):
            self.steps.append(StepPoint(event.step, event.epoch, dict(event.metrics), event.samples_per_sec, event.elapsed))
            return
        if isinstance(event, RunStarted):
            self.started = event
            self.run_id = event.run_id
        elif isinstance(event, (RunFinished, RunFailed)):
            self.final = event
        self.events.append(event)  # one atomic list append (the GIL): the UI thread only reads
        if isinstance(event, (RunStarted, RunFinished, RunFailed)):
            self.post(event)

    def post(self, event: Event) -> None:
        """Send one event to the app as a RunEvent; silently dropped once the app has closed."""
        from dlcourse_tui.tui.messages import RunEvent

        if self.app is None:
            return
        try:
            self.app.post_message(RunEvent(self, event))
        except RuntimeError:  # the event loop is already closed: the app is gone
            pass

    # -- UI side --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return not self.done_event.is_set()

    def toggle_pause(self) -> bool:
        """Pause or resume; True when now paused."""
        if self.pause_event.is_set():
            self.pause_event.clear()
            return False
        self.pause_event.set()
        return True

    def stop(self) -> None:
        self.stop_event.set()
        self.pause_event.clear()


def settle_heap() -> None:
    """Collect garbage once, then hide every surviving object from the cyclic collector.

    With torch and Textual loaded, a full collection walks ~200k objects and took
    250-300 ms, and while a run trained one came every few seconds: the UI (and any key)
    froze meanwhile. Modules, classes, a prepared model and data live long anyway;
    frozen, they cost later collections nothing. Unfreezing first lets what earlier runs
    left behind (old dashboards) be collected here, so memory stays bounded.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def train(handle: RunHandle) -> None:
    """The body of the training worker: prepare, then execute with the bridge listening.

    Runs on a worker thread; every torch operation of the run happens here. Any failure,
    including bad input found while preparing, ends as one RunFailed event.
    """
    from dlcourse_tui.errors import UserError

    try:
        try:
            from dlcourse_tui.engine.session import execute, prepare_run

            prepared = prepare_run(handle.config, resume=handle.resume)
            settle_heap()  # one pause now, before the clock starts, instead of many while training
            if handle.stop_event.is_set():
                handle.callback(RunFailed(message="The run was cancelled before it started.", step=0))
                return
            store, _final = execute(prepared, [handle.callback], stop_event=handle.stop_event,
                                    pause_event=handle.pause_event)
            handle.run_path = str(store.path)
            from dlcourse_tui.course.diagnostics import diagnose_run

            handle.diagnoses = [d.text for d in diagnose_run(store.record, handle.config)]
        except UserError as e:
            handle.callback(RunFailed(message=str(e), step=0))
        except Exception as e:  # noqa: BLE001 - the app must survive any failure of a run
            import traceback

            handle.callback(RunFailed(message=f"The run could not start: {type(e).__name__}: {e}", step=0,
                                      traceback=traceback.format_exc()))
    finally:
        handle.done_event.set()
        handle.post(_Done())


STOP_GRACE_S = 5.0  # how long a stopped run may take to finish its step and write its checkpoint


def supervise(handle: RunHandle) -> None:
    """The body of the Textual thread worker: run `train` on a daemon thread and wait for it.

    Preparing data cannot be interrupted, and Python joins the worker threads of Textual's
    executor at exit; the daemon thread lets the app exit promptly even then. Once a stop is
    asked for during training, this waits at most STOP_GRACE_S for the trainer's checkpoint (written
    atomically, so a thread cut off at exit never leaves half a file).
    """
    thread = threading.Thread(target=train, args=(handle,), name=f"dlc-train-{handle.config.lesson}", daemon=True)
    handle.thread = thread
    thread.start()
    while not handle.done_event.wait(0.1):
        if handle.stop_event.is_set():
            if handle.started is not None:  # training: the trainer stops after this step and checkpoints
                handle.done_event.wait(STOP_GRACE_S)
            return  # still preparing: nothing to save yet, and preparing cannot be interrupted


@dataclass(frozen=True)
class _Done:
    """Internal marker: the worker thread returned."""


def picture_text(event: PictureReady, width: int, *, color: bool) -> Any:
    """The rich Text of a picture fitted to `width` cells (numpy only, cheap)."""
    from dlcourse_tui.render.halfblock import halfblock

    return halfblock(event.pixels, max(4, width), color=color, grow=True)
