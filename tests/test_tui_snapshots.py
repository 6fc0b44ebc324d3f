"""SVG snapshots of the main screens at 80x24 and 120x40 (pytest-textual-snapshot).

Deterministic: the runs on the runs screen are written here with fixed ids, dates and
curves; the dashboard shows a real tiny run (fixed seed, one thread) whose run id, folder,
timings and throughput are replaced by fixed values before the screen sees them.

Update after an intended change with: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import pytest

from dlcourse_tui.tui.app import DLCApp

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
size_param = pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))


LESSONS = ("linear-classifier", "single-neuron", "mlp-backprop")


@pytest.fixture(autouse=True)
def _fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots in colour (conftest sets NO_COLOR for the other tests), of chapter 1 only:
    a lesson added to the course does not change them."""
    from dlcourse_tui import lessons
    from dlcourse_tui.tui.screens import browser

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(browser, "load_lessons", lambda: [l for l in lessons.load_lessons() if l.id in LESSONS])


RUNS = [  # id, lesson, sets, status, final val_acc, date
    ("20250301-091500-single-neuron-neuron", "single-neuron", ["lr=0.5"], "completed", 0.93, "2025-03-01T09:16:02"),
    ("20250301-093000-single-neuron-neuron", "single-neuron", ["lr=0.05", "epochs=60"], "stopped", 0.81, "2025-03-01T09:31:40"),
    ("20250302-101010-mlp-backprop-mlp", "mlp-backprop", [], "failed", None, "2025-03-02T10:10:55"),
]


def write_runs(root: Path) -> None:
    """Three runs with fixed ids, curves and dates, as the run store writes them."""
    from dlcourse_tui.lessons import find_lesson

    for n, (run_id, lesson, sets, status, acc, date) in enumerate(RUNS):
        path = root / "runs" / run_id
        path.mkdir(parents=True)
        cfg = find_lesson(lesson).config(sets=sets).to_dict()
        (path / "config.json").write_text(json.dumps(cfg))
        lines = []
        steps = 40 if status != "failed" else 6
        for step in range(1, steps + 1):
            loss = 1.2 / (1 + 0.08 * step * (n + 1)) + 0.05 * math.sin(step * (1.3 + n))
            lines.append({"type": "step", "step": step, "epoch": 1 + step // 10, "loss": round(loss, 4),
                          "acc": round(1 - loss / 1.5, 4)})
            if step % 10 == 0:
                lines.append({"type": "eval", "step": step, "epoch": step // 10, "val_loss": round(loss * 1.1, 4),
                              "val_acc": round(1 - loss * 1.1 / 1.5, 4)})
        (path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
        summary = {"status": status, "started": date, "updated": date, "finished": date, "pid": None}
        if acc is not None:
            summary["metrics"] = {"val_acc": acc, "val_loss": round(1 - acc, 3)}
        if status == "failed":
            summary["message"] = "The loss became NaN at step 6: lower the learning rate (e.g. --set lr=0.001)."
        (path / "summary.json").write_text(json.dumps(summary))


@size_param
def test_browser_snapshot(snap_compare, size) -> None:
    assert snap_compare(DLCApp(preload_torch=False), terminal_size=size, press=["down", "wait:500"])  # the text follows a resting cursor


@size_param
def test_help_snapshot(snap_compare, size) -> None:
    assert snap_compare(DLCApp(preload_torch=False), terminal_size=size, press=["down", "wait:500", "question_mark"])


@size_param
def test_picker_snapshot(snap_compare, size) -> None:
    async def open_picker(pilot) -> None:
        from textual.widgets import OptionList

        await pilot.press("down", "m")
        models = pilot.app.screen.query_one(OptionList)
        end = time.monotonic() + 20
        while "… params" in str(models.get_option_at_index(0).prompt) and time.monotonic() < end:
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(DLCApp(preload_torch=False), terminal_size=size, run_before=open_picker)


@size_param
def test_runs_snapshot(snap_compare, size, dlc_home: Path) -> None:
    write_runs(dlc_home)
    # two runs selected: their curves overlaid; the third under the cursor
    assert snap_compare(DLCApp(preload_torch=False), terminal_size=size, press=["R", "down", "space", "down", "space"])


FIXED_ID = "20250301-120000-single-neuron-neuron"


@pytest.fixture(scope="module")
def tiny_run_events() -> list:
    """The events of a real 2-epoch single-neuron run, with run id, folder and timings made fixed."""
    import os
    import tempfile

    from dlcourse_tui.engine.events import EpochEnded, RunFinished, RunStarted, StepEnded
    from dlcourse_tui.engine.session import execute, prepare_run
    from dlcourse_tui.lessons import find_lesson

    events: list = []
    cfg = find_lesson("single-neuron").config(sets=["n_train=64", "n_val=32", "epochs=2", "seed=0", "threads=1"])
    with tempfile.TemporaryDirectory() as tmp:
        execute(prepare_run(cfg), [events.append], store_root=Path(tmp))
    fixed = []
    for e in events:
        if isinstance(e, RunStarted):
            e = dataclasses.replace(e, run_id=FIXED_ID, run_dir=os.path.join("/home/learner/.local/share/dlc/runs", FIXED_ID))
        elif isinstance(e, StepEnded):
            e = dataclasses.replace(e, elapsed=0.25 * e.step, samples_per_sec=1024.0)
        elif isinstance(e, (EpochEnded, RunFinished)):
            e = dataclasses.replace(e, elapsed=0.25 * e.step)
        fixed.append(e)
    return fixed


@size_param
def test_dashboard_snapshot(snap_compare, size, tiny_run_events) -> None:
    from dlcourse_tui.engine.events import RunStarted, StepEnded
    from dlcourse_tui.tui.bridge import RunHandle
    from dlcourse_tui.tui.screens.dashboard import DashboardScreen
    from dlcourse_tui.tui.widgets.curves import Curves

    async def show_finished_run(pilot) -> None:
        started = next(e for e in tiny_run_events if isinstance(e, RunStarted))
        from dlcourse_tui.engine.config import RunConfig

        handle = RunHandle(config=RunConfig.from_dict(started.config))
        for e in tiny_run_events:  # the bridge's callback, without an app to post to
            handle.callback(e)
        handle.events = [e for e in tiny_run_events if not isinstance(e, StepEnded)]
        handle.phase = handle.final.status
        handle.done_event.set()
        await pilot.app.push_screen(DashboardScreen(handle))
        await pilot.pause(0.6)  # two ticks of the dashboard: charts drawn
        for chart in pilot.app.screen.query(Curves):
            assert chart.points > 0
        await pilot.pause()

    assert snap_compare(DLCApp(preload_torch=False), terminal_size=size, run_before=show_finished_run)
