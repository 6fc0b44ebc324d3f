"""Helpers shared by the tests that train real (tiny) runs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

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


def stopped_and_resumed(config, stop_after_step: int):
    """`config` run without a break, and again stopped once step `stop_after_step` is
    reported, then resumed in this process: (uninterrupted store, resumed store, its final event)."""
    from dlcourse_tui.engine.runs import find_run

    full, _, _ = run_to_end(config)
    cut, stopped, _ = run_to_end(config, stop_after_step=stop_after_step)
    assert stopped.status == "stopped"
    resumed, final, _ = run_to_end(config, resume=find_run(cut.id))
    return full, resumed, final


def final_task_state(store) -> dict[str, Any]:
    """The task part of a run's checkpoint: modules, optimisers, schedules."""
    from dlcourse_tui.engine.checkpoint import load_checkpoint

    return load_checkpoint(store.path / "checkpoint.pt")["task"]


def assert_same_modules(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Every tensor of every module of two task states equal, bit for bit."""
    assert set(a["modules"]) == set(b["modules"])
    for name, module in a["modules"].items():
        for k, v in module.items():
            assert v.equal(b["modules"][name][k]), (name, k)


def dlc_in_a_new_interpreter(*args: str, watch: tuple[str, ...] = ("torch",), env=None) -> tuple[int, str, list[str]]:
    """`dlc ARGS` in a fresh Python: (exit code, stdout, which of the `watch` modules it imported)."""
    code = ("import sys; sys.argv=['dlc', *sys.argv[1:]]\n"
            "from dlcourse_tui.cli.app import main\n"
            "code = 0\n"
            "try: main()\n"
            "except SystemExit as e: code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)\n"
            f"sys.stderr.write(repr((code, sorted(m for m in {tuple(watch)!r} if m in sys.modules))))")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, env=env)
    exit_code, imported = eval(r.stderr.strip().splitlines()[-1])  # the line written above
    return exit_code, r.stdout, imported
