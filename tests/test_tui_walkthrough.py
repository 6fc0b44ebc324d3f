"""The walkthrough pane in the app, driven by keys: steps tick as the learner acts, hints,
progress that survives a restart, reset, a prediction asked before a run and marked after."""

from __future__ import annotations

import time

import pytest
from textual.widgets import Input, OptionList

from dlcourse_tui.tui.app import DLCApp
from dlcourse_tui.tui.screens.browser import BrowserScreen
from dlcourse_tui.tui.screens.dashboard import DashboardScreen
from dlcourse_tui.tui.screens.picker import PickerScreen
from dlcourse_tui.tui.screens.predict import ConfirmScreen, PredictScreen
from dlcourse_tui.tui.screens.runs import RunScreen, RunsScreen
from dlcourse_tui.tui.widgets.walkthrough import WalkthroughPane
from test_walkthrough import make_lesson

SIZE = (80, 24)
BODY = '''
## What to watch

```step
id = "first-run"
do = "Run the experiment as it is."
done = "run completed"
hints = ["Press r in the browser.", "It takes a few seconds."]
```

```step
id = "runs"
do = "Open the runs screen."
done = "screen runs viewed"
```

```question
id = "short-run"
ask = "With only 2 epochs, will val accuracy stay above 0.5?"
choices = ["yes", "no"]
answer = "yes"
explain = "Two blobs apart: a few steps find the line."
before = "knob epochs = 2"
observed = { yes = "metric val_acc > 0.5", no = "metric val_acc <= 0.5" }
```

```step
id = "short"
do = "Run it again for 2 epochs (m, then epochs)."
done = "run completed with knob epochs = 2"
```
'''


@pytest.fixture
def walk_lesson(tmp_path, monkeypatch):
    monkeypatch.setenv("DLC_LESSONS", str(make_lesson(tmp_path / "extra", body=BODY)))


async def wait_for(pilot, cond, timeout: float = 60.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout  # a bound against a hang, not a measurement
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def open_walk_lesson(pilot) -> None:
    browser = pilot.app.screen
    browser.select_lesson("walk")
    await pilot.pause()
    assert browser.lesson.id == "walk"


def pane_text(app) -> str:
    return str(app.screen.query_one(WalkthroughPane).render())


async def test_a_whole_walkthrough_by_keys_survives_a_restart_and_resets(walk_lesson) -> None:
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_walk_lesson(pilot)
        await pilot.press("w")
        browser = app.screen
        assert browser.query_one(WalkthroughPane).has_class("shown") and browser.has_class("walking")
        assert not browser.query_one("#lesson-tree").display  # the pane takes the tree's room at 80 columns
        text = pane_text(app)
        assert "Walkthrough 0/3" in text and "→ 1 Run the experiment" in text and "to do: run completed" in text
        await pilot.press("h")
        assert "hint 1: Press r in the browser." in pane_text(app) and "(1 hint left: h)" in pane_text(app)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        handle = app.screen.handle
        await wait_for(pilot, lambda: handle.phase == "completed", what="the run")
        await wait_for(pilot, lambda: "✓ 1" in pane_text(app), what="step 1 ticked on the dashboard's pane")
        assert "n for the next step" in pane_text(app)
        await pilot.press("n")
        assert "→ 2 Open the runs screen." in pane_text(app)
        await pilot.press("R")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: "✓ 2" in pane_text(app), what="step 2 ticked")
    again = DLCApp(preload_torch=False)  # a restart: progress comes back from the data folder
    async with again.run_test(size=SIZE) as pilot:
        await open_walk_lesson(pilot)
        await pilot.press("w")
        assert "Walkthrough 2/3" in pane_text(again) and "✓ 1" in pane_text(again)
        await pilot.press("x")
        assert isinstance(again.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: "Walkthrough 1/3" in pane_text(again), what="reset, then step 1 ticks again")


async def test_a_prediction_is_asked_before_its_run_and_marked_after_it(walk_lesson) -> None:
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_walk_lesson(pilot)
        await pilot.press("w", "m")
        assert isinstance(app.screen, PickerScreen)
        field = app.screen.query_one("#knob-train-epochs", Input)
        field.focus()
        await pilot.press("ctrl+u", "2", "ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, PredictScreen), what="the prediction")
        assert "With only 2 epochs" in str(app.screen.query_one("#predict-ask").render())
        assert app.screen.query_one(OptionList).option_count == 2
        await pilot.press("enter")  # the first choice: yes
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        handle = app.screen.handle
        await wait_for(pilot, lambda: handle.phase == "completed", what="the run")
        await wait_for(pilot, lambda: any("You said yes: right" in str(n.message) for n in app._notifications),
                       what="the prediction marked")
        walk = app.walks.of(app.walk_lesson())
        answer = walk.progress.answers["short-run"]
        assert answer.right is True and answer.run == handle.run_id and answer.observed == "yes"


async def test_without_the_walkthrough_a_run_starts_without_questions(walk_lesson) -> None:
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_walk_lesson(pilot)
        await pilot.press("m")
        field = app.screen.query_one("#knob-train-epochs", Input)
        field.focus()
        await pilot.press("ctrl+u", "2", "ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        assert app.walks.of(app.walk_lesson()).progress.answers == {}  # free exploration: nothing was asked
        assert not app.check_action("walk_next", ())  # and the walkthrough's keys are off


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_walkthrough_pane_snapshot(snap_compare, size) -> None:
    async def open_pane(pilot) -> None:
        pilot.app.screen.select_lesson("single-neuron")
        await pilot.pause()
        await pilot.press("w")
        await pilot.pause()

    assert snap_compare(DLCApp(preload_torch=False), terminal_size=size, run_before=open_pane)


async def test_the_dashboard_draws_the_expected_band_and_logs_the_diagnosis(tmp_path, monkeypatch) -> None:
    """A lesson that ships a band its run cannot reach (val_acc 0.98-1.0 from epoch 1): the
    dashboard's accuracy chart carries the band, and once the run ends its log says, in one
    sentence, that validation accuracy is below it and which knob differs."""
    import json

    from textual.widgets import RichLog

    from dlcourse_tui.tui.widgets.curves import Curves

    root = make_lesson(tmp_path / "extra", body="\n## What to watch in the curves\n\ntext\n")
    band = {"epochs": [1, 2, 3], "median": [0.99] * 3, "p10": [0.98] * 3, "p90": [1.0] * 3}
    (root / "90-walk" / "reference.json").write_text(json.dumps({"made_by": "test", "metrics": {"val_acc": band}}))
    monkeypatch.setenv("DLC_LESSONS", str(root))
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_walk_lesson(pilot)
        await pilot.press("m")
        for knob, value in (("train-epochs", "3"), ("train-lr", "0.00001"), ("data-n_train", "40")):
            field = app.screen.query_one(f"#knob-{knob}", Input)
            field.focus()
            await pilot.press("ctrl+u", *value)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        dash = app.screen
        await wait_for(pilot, lambda: dash.handle.started is not None, what="the run to start")
        await pilot.pause(0.3)
        chart = dash.query_one("#metric-chart", Curves)
        per_epoch = dash.handle.started.steps_per_epoch
        assert chart.series["expected p10"] == ([per_epoch * 1.0, per_epoch * 2.0, per_epoch * 3.0], [0.98] * 3)
        assert "expected p10" not in dash.query_one("#loss-chart", Curves).series  # no val_loss band shipped
        await wait_for(pilot, lambda: dash.handle.phase == "completed", what="the run")
        await wait_for(pilot, lambda: dash._diagnosed, what="the diagnoses")
        await pilot.pause(0.2)
        log = " ".join(" ".join(line.text for line in dash.query_one("#log", RichLog).lines).split())  # unwrapped
        assert "diagnosis: Validation acc is below the expected band since epoch" in log, log
        assert "1/10000 of the default" in log
        await pilot.press("escape", "R", "enter")  # the same run on its own screen, from the runs table
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run's screen")
        assert app.screen.query_one("#run-metric", Curves).series["expected p90"][1] == [1.0] * 3
        summary = str(app.screen.query_one("#run-summary").render())
        assert "diagnosis: Validation acc is below the expected band" in " ".join(summary.split())
