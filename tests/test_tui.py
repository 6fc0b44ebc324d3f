"""The Textual app driven by keys with Pilot at 80x24: browser, picker, dashboard, runs, help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from textual.widgets import Button, DataTable, Input, Static

from dlcourse_tui.engine.runs import list_runs, runs_root
from dlcourse_tui.tui.app import DLCApp
from dlcourse_tui.tui.screens.browser import BrowserScreen
from dlcourse_tui.tui.screens.dashboard import DashboardScreen
from dlcourse_tui.tui.screens.help import HelpScreen
from dlcourse_tui.tui.screens.picker import KnobRow, PickerScreen
from dlcourse_tui.tui.screens.runs import RunScreen, RunsScreen
from dlcourse_tui.tui.widgets.curves import Curves
from dlcourse_tui.tui.widgets.status import StatusText

SIZE = (80, 24)


async def wait_for(pilot, cond, timeout: float = 15.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def open_single_neuron(pilot) -> None:
    """From the browser: down to 'A single neuron', enter opens it."""
    await pilot.press("down", "enter")
    screen = pilot.app.screen
    assert isinstance(screen, BrowserScreen)
    assert screen.lesson.id == "single-neuron"


async def set_knob(pilot, key: str, text: str) -> None:
    field = pilot.app.screen.query_one(f"#knob-{key.replace('.', '-')}", Input)
    field.focus()
    await pilot.press("ctrl+u", *text)


async def start_tiny_run(pilot, epochs: str = "2", n_train: str = "64"):
    await open_single_neuron(pilot)
    await pilot.press("m")
    assert isinstance(pilot.app.screen, PickerScreen)
    await set_knob(pilot, "data.n_train", n_train)
    await set_knob(pilot, "train.epochs", epochs)
    assert not pilot.app.screen.query_one("#start", Button).disabled
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen), what="the dashboard")
    return pilot.app.screen.handle


def test_first_paint_without_torch() -> None:
    """The browser paints before torch is imported (fresh interpreter: conftest imports torch here)."""
    script = textwrap.dedent("""
        import asyncio, sys
        from dlcourse_tui.tui.app import DLCApp

        async def main():
            app = DLCApp(preload_torch=False)
            async with app.run_test(size=(80, 24)) as pilot:
                while app.torch_at_first_paint is None:
                    await pilot.pause(0.01)
                print(app.torch_at_first_paint, "torch" in sys.modules, type(app.screen).__name__)

        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "BrowserScreen"]


async def test_browser_shows_lesson_and_experiment() -> None:
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_single_neuron(pilot)
        summary = str(app.screen.query_one("#experiment", Static).render())
        assert "blobs" in summary and "neuron" in summary and "val_acc" in summary
        assert "overfit" in summary  # variants listed
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = dict((d, k) for k, d in app.screen.keys)
        assert keys["Run"] == "r" and keys["Models & knobs"] == "m"
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)


async def test_picker_refuses_invalid_knob_and_resets() -> None:
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_single_neuron(pilot)
        await pilot.press("m")
        picker = app.screen
        assert isinstance(picker, PickerScreen)
        await set_knob(pilot, "train.epochs", "0")
        row = next(r for r in picker.query(KnobRow) if r.knob.key == "train.epochs")
        assert row.has_class("invalid") and "out of range" in row.error
        assert picker.query_one("#start", Button).disabled
        await pilot.press("ctrl+s")  # refused: still on the picker
        assert app.screen is picker
        await set_knob(pilot, "model.degree", "two")
        assert "not an integer" in next(r for r in picker.query(KnobRow) if r.knob.key == "model.degree").error
        await pilot.press("ctrl+r")  # defaults
        assert not any(r.error for r in picker.query(KnobRow))
        assert not picker.query_one("#start", Button).disabled
        assert row.input.value == "30"
        # a variant fills its own values
        picker.query_one("#variant").value = "overfit"
        await pilot.pause()
        assert row.input.value == "1500"
        assert picker.build_config().variant == "overfit"
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)


async def test_beside_the_loss_a_gan_run_charts_its_lesson_target_not_an_accuracy() -> None:
    from dlcourse_tui.lessons import find_lesson

    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        config = find_lesson("gan").config(sets=["n_train=64", "n_val=32", "batch_size=16", "quality_samples=50"],
                                          overrides={"train.epochs": 2})
        handle = app.start_run(config)
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        await wait_for(pilot, lambda: handle.phase == "completed", timeout=120, what="RunFinished")
        chart = app.screen.query_one("#metric-chart", Curves)
        await wait_for(pilot, lambda: len(chart.series["val"][0]) == 2, what="two evaluations charted")
        assert chart.title == "class coverage" and all(0 <= v <= 10 for v in chart.series["val"][1])


async def test_tiny_run_trains_and_charts_arrive() -> None:
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        handle = await start_tiny_run(pilot)
        assert handle.config.train.epochs == 2 and handle.config.data_args["n_train"] == 64
        await wait_for(pilot, lambda: handle.phase == "completed", what="RunFinished")
        dash = app.screen
        # 2 epochs of 2 steps: one step point per epoch (read back at its end) and one val point
        loss = dash.query_one("#loss-chart", Curves)
        await wait_for(pilot, lambda: len(loss.series["train"][0]) + len(loss.series["val"][0]) == 4, what="chart points")
        assert len(loss.series["expected p10"][0]) == 2  # the lesson's band, over this run's 2 epochs
        assert len(loss.series["train"][0]) == 2 and len(loss.series["val"][0]) == 2
        assert dash.query_one("#picture").pixels is not None
        assert (runs_root() / handle.run_id / "metrics.jsonl").is_file()
        assert json.loads((runs_root() / handle.run_id / "summary.json").read_text())["status"] == "completed"
        assert "completed" in str(dash.query_one("#run-status", StatusText).render())
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)
        await pilot.press("D")  # back to the dashboard of the last run
        assert isinstance(app.screen, DashboardScreen)


def test_only_a_runs_start_and_end_wake_the_ui() -> None:
    """Epochs, evaluations and pictures go to the handle's event list, read on the dashboard's
    timer; only the start and the end are posted as messages (each woke the UI thread)."""
    import numpy as np

    from dlcourse_tui.engine.events import EpochEnded, Evaluated, PictureReady, RunFinished, RunStarted, StepEnded
    from dlcourse_tui.lessons import find_lesson
    from dlcourse_tui.tui.bridge import RunHandle

    class FakeApp:
        def __init__(self) -> None:
            self.posted: list = []

        def post_message(self, message) -> None:  # noqa: ANN001
            self.posted.append(type(message.event).__name__)

    app = FakeApp()
    handle = RunHandle(config=find_lesson("single-neuron").config(), app=app)  # type: ignore[arg-type]
    events = [RunStarted("r", {}, "cpu", 3, 2, 10, 0, False)]
    for epoch in range(1, 6):
        events += [StepEnded(2 * epoch, epoch, {"loss": 1.0}, 100.0, 0.1 * epoch),
                   EpochEnded(epoch, 2 * epoch, {"loss": 1.0}, 0.1 * epoch),
                   Evaluated(epoch, 2 * epoch, {"val_loss": 1.0}),
                   PictureReady("boundary", "b", epoch, np.zeros((4, 4, 3), np.uint8))]
    events.append(RunFinished("completed", 10, 5, {"loss": 1.0}, 1.0))
    for e in events:
        handle.callback(e)
    assert app.posted == ["RunStarted", "RunFinished"]
    assert handle.events == [e for e in events if not isinstance(e, StepEnded)]
    assert len(handle.steps) == 5


async def test_a_dashboard_catches_up_after_being_hidden() -> None:
    """Under the runs screen the dashboard does nothing on its timer; back on top it shows
    the whole run: every step point, the evaluations, the final status and log lines."""
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        handle = await start_tiny_run(pilot, epochs="3")
        dash = app.screen
        await pilot.press("R")
        assert isinstance(app.screen, RunsScreen)
        await wait_for(pilot, lambda: handle.phase == "completed", what="RunFinished")
        await pilot.pause(0.6)
        await pilot.press("escape")
        assert app.screen is dash
        loss = dash.query_one("#loss-chart", Curves)
        await wait_for(pilot, lambda: len(loss.series["train"][0]) == 3 and len(loss.series["val"][0]) == 3,
                       what="the points of all 3 epochs")
        await wait_for(pilot, lambda: loss.draws > 0 and not loss.dirty, what="the chart drawn")
        log = "\n".join(line.text for line in dash.query_one("#log").lines)
        assert "epoch 3 val" in log and "run completed" in log
        assert "completed" in str(dash.query_one("#run-status", StatusText).render())


async def test_pause_then_stop_saves_checkpoint() -> None:
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        handle = await start_tiny_run(pilot, epochs="5000")
        await wait_for(pilot, lambda: handle.phase == "training", what="RunStarted")
        await pilot.press("p")
        assert handle.pause_event.is_set()
        await pilot.pause(0.3)
        steps = len(handle.steps)
        await pilot.pause(0.5)
        assert len(handle.steps) <= steps + 1  # at most the window that was under way
        await pilot.press("p")
        assert not handle.pause_event.is_set()
        await pilot.press("s")
        await wait_for(pilot, lambda: handle.phase == "stopped", what="the stop")
        record = next(r for r in list_runs() if r.id == handle.run_id)
        assert record.status == "stopped" and record.checkpoint.is_file()


def _headless_run(**sets: str) -> str:
    from dlcourse_tui.engine.session import execute, prepare_run
    from dlcourse_tui.lessons import find_lesson

    cfg = find_lesson("single-neuron").config(sets=[f"{k}={v}" for k, v in sets.items()])
    store, _ = execute(prepare_run(cfg), [])
    return store.id


async def test_runs_screen_lists_and_compares() -> None:
    a = _headless_run(n_train=64, n_val=32, epochs=2)
    b = _headless_run(n_train=64, n_val=32, epochs=3, lr=0.5)
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("R")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        assert screen.query_one(DataTable).row_count == 2
        await pilot.press("space", "down", "space")
        assert screen.selected == {a, b}
        chart = screen.query_one("#runs-chart", Curves)
        assert len(chart.series) == 2 and chart.points > 0
        await pilot.press("v")
        assert chart.title == "val loss"
        await pilot.press("enter")
        assert isinstance(app.screen, RunScreen)
        assert app.screen.query_one("#run-loss", Curves).points > 0
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, BrowserScreen)


async def test_failing_run_leaves_app_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    from dlcourse_tui.tasks.classify import ClassifyTask

    def boom(self, batch):
        raise RuntimeError("boom")

    monkeypatch.setattr(ClassifyTask, "train_step", boom)
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_single_neuron(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        handle = app.screen.handle
        await wait_for(pilot, lambda: handle.phase == "failed", what="RunFailed")
        status = str(app.screen.query_one("#run-status", StatusText).render())
        assert "failed" in status and "boom" in status
        assert any("boom" in str(n.message) for n in app._notifications)
        await pilot.press("escape", "R")
        assert isinstance(app.screen, RunsScreen)
        assert app.screen.query_one(DataTable).get_row_at(0)[2] == "failed"
        await pilot.press("escape", "m")
        assert isinstance(app.screen, PickerScreen)


async def test_quit_mid_run_stops_the_run_with_a_checkpoint() -> None:
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        handle = await start_tiny_run(pilot, epochs="5000")
        await wait_for(pilot, lambda: len(handle.steps) > 0, what="training steps")
        await pilot.press("ctrl+q")
    # a bound against a hang, not a measurement: 5000 epochs would take minutes
    assert handle.done_event.wait(60), "the training thread outlived the app"
    record = next(r for r in list_runs() if r.id == handle.run_id)
    assert record.status == "stopped" and record.checkpoint.is_file() and record.summary["epoch"] < 5000


def test_quit_while_preparing_exits_the_process_without_waiting_for_the_data() -> None:
    """A run still preparing its data cannot be interrupted; the process exits anyway. Here
    preparing never ends (the data generator waits forever), so an exit proves it."""
    script = textwrap.dedent("""
        import asyncio, threading
        import dlcourse_tui.engine.session as session
        from dlcourse_tui.tui import leave
        from dlcourse_tui.tui.app import DLCApp

        session.load_dataset = lambda *a, **k: threading.Event().wait()  # preparing never ends

        async def main():
            app = DLCApp(preload_torch=False)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press("r")
                await pilot.pause(0.3)
                assert app.current_run.phase == "preparing", app.current_run.phase
                await pilot.press("ctrl+q")
            return app

        leave(asyncio.run(main()))  # what `dlc` does after the app returns
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


async def _palette(pilot, text: str, expect: str) -> None:
    """Open the command palette, type `text`, wait for a hit containing `expect` at the top, choose it."""
    from textual.command import CommandList, CommandPalette

    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CommandPalette), what="the command palette")
    await pilot.press(*text)
    hits = pilot.app.screen.query_one(CommandList)

    def top() -> str:
        return str(hits.get_option_at_index(0).prompt) if hits.option_count else ""

    await wait_for(pilot, lambda: expect in top(), timeout=5, what=f"a palette hit {expect!r} (top: {top()!r})")
    await pilot.press("down", "enter")  # down highlights the first hit
    await wait_for(pilot, lambda: not isinstance(pilot.app.screen, CommandPalette), what="the palette to close")


async def test_palette_finds_lessons_models_and_runs() -> None:
    a = _headless_run(n_train=64, n_val=32, epochs=1)
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        await _palette(pilot, "mlp and back", "lesson MLP")
        assert isinstance(app.screen, BrowserScreen) and app.screen.lesson.id == "mlp-backprop"
        await _palette(pilot, "model cnn convolutional", "model cnn")
        picker = app.screen
        assert isinstance(picker, PickerScreen)
        assert picker.lesson.id == "convolutional-networks" and picker.model == "cnn"
        await _palette(pilot, "run " + a[-20:], a)
        runs = app.screen
        assert isinstance(runs, RunsScreen) and runs.current().id == a
        assert len(app.screen_stack) == 3  # browser, runs: the picker was closed on the way
        assert runs.query_one("#runs-chart", Curves).points > 0


async def test_runs_smoothing_keeps_raw_curve() -> None:
    from dlcourse_tui.tui.widgets.curves import ema

    assert ema([1.0, 1.0, 1.0], 0.6) == pytest.approx([1.0, 1.0, 1.0])  # debiased: a constant stays put
    _headless_run(n_train=256, n_val=32, epochs=3, batch_size=8)
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("R")
        screen = app.screen
        chart = screen.query_one("#runs-chart", Curves)
        await pilot.press("s")
        assert chart.smoothing == 0.6 and "EMA 0.6" in chart.title
        await pilot.pause()
        # the raw series (faint, unlabelled) and the smoothed one: two curves drawn for one run
        from dlcourse_tui.render.plot import RAW

        assert chart.chart is not None and [sid == RAW for _label, sid, _marker in chart.chart.curves] == [True, False]
        await pilot.press("s")
        assert chart.smoothing == 0 and "EMA" not in chart.title


async def test_resume_stopped_run_from_runs_screen() -> None:
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        handle = await start_tiny_run(pilot, epochs="5000")
        await wait_for(pilot, lambda: len(handle.steps) >= 3, what="training steps")
        await pilot.press("s")
        await wait_for(pilot, lambda: handle.phase == "stopped", what="the stop")
        stopped_at = handle.final.step
        await pilot.press("escape", "R")
        runs = app.screen
        assert isinstance(runs, RunsScreen) and runs.current().id == handle.run_id
        assert runs.query_one(DataTable).get_row_at(0)[2] == "stopped"
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.handle is not handle,
                       what="the resumed run's dashboard")
        resumed = app.screen.handle
        await wait_for(pilot, lambda: resumed.started is not None, what="RunStarted")
        assert resumed.started.resumed and resumed.started.start_step == stopped_at
        assert resumed.started.run_id == handle.run_id  # the same run folder continues
        loss = app.screen.query_one("#loss-chart", Curves)
        assert loss.series["train"][0] and loss.series["train"][0][0] <= stopped_at  # the old curve is there
        await pilot.press("s")
        await wait_for(pilot, lambda: resumed.phase == "stopped", what="the second stop")
        assert resumed.final.step >= stopped_at


async def test_the_runs_table_shows_each_lessons_headline_metric_and_help_keeps_to_the_screens_keys() -> None:
    from dlcourse_tui.engine.session import execute, prepare_run
    from dlcourse_tui.lessons import find_lesson

    cfg = find_lesson("autoencoder").config(sets=["n_train=64", "n_val=32", "batch_size=16"], overrides={"train.epochs": 1})
    ae, _ = execute(prepare_run(cfg), [])
    neuron = _headless_run(n_train=64, n_val=32, epochs=1)
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("R")
        table = app.screen.query_one(DataTable)
        results = {str(table.get_row(key)[4]): str(table.get_row(key)[3]) for key in (ae.id, neuron)}
        assert results["autoencoder"].startswith("recon mse 0.") and results["single-neuron"].startswith("accuracy ")
        assert results["single-neuron"].endswith("%")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        actions = [what for _, what in app.screen.keys]
        assert "Resume" in actions and "Select" in actions
        assert not any(a.lower().startswith(("cursor", "page", "scroll")) for a in actions), actions
