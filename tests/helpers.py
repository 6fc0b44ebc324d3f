"""Helpers shared by the tests that train real (tiny) runs."""

from __future__ import annotations

import json
import threading

from dlcourse_tui.engine.events import StepEnded
from dlcourse_tui.engine.session import execute, prepare_run


def run_to_end(config, *, stop_after_step: int | None = None, resume=None, epochs=None):
    """Run `config` to its end (store, final event, every event); with stop_after_step,
    ask it to stop once that step has been reported."""
    events: list = []
    stop = threading.Event()

    def listen(e):
        events.append(e)
        if stop_after_step is not None and isinstance(e, StepEnded) and e.step >= stop_after_step:
            stop.set()

    store, final = execute(prepare_run(config, resume=resume, epochs=epochs), [listen], stop_event=stop)
    return store, final, events


def metric_numbers(store) -> list[dict]:
    """A run's metrics.jsonl lines without their wall-clock times: what a resumed run must repeat."""
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (store.path / "metrics.jsonl").read_text().splitlines()]
