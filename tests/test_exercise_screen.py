"""The app's exercise screen, reached by keys: the lesson's exercises, s copies a starter,
c checks the file in a worker process and shows the result; escape goes back."""

from __future__ import annotations

import time

from textual.widgets import OptionList, Static

from dlcourse_tui.tui.app import DLCApp
from dlcourse_tui.tui.screens.browser import BrowserScreen
from dlcourse_tui.tui.screens.exercises import ExerciseScreen


async def wait_until(pilot, cond, timeout: float = 60.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def test_exercise_screen_starts_checks_and_shows_the_result(dlc_home) -> None:
    app = DLCApp(preload_torch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("E")  # the browser opens on the first lesson, the linear classifier
        screen = app.screen
        assert isinstance(screen, ExerciseScreen) and screen.lesson.id == "linear-classifier"
        options = screen.query_one(OptionList)
        names = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert any(n.startswith("softmax_ce — ") and n.endswith("[not started]") for n in names)
        while screen.exercise.name != "softmax_ce":
            await pilot.press("down")
        await pilot.press("s")
        path = dlc_home / "exercises" / "softmax_ce.py"
        assert path.exists()
        assert f"Your file: {path}" in str(screen.query_one("#exercise-task", Static).render())
        path.write_text("def softmax_cross_entropy(scores, y)\n    return 0\n")  # line 1 lacks its colon
        await pilot.press("c")
        result = screen.query_one("#exercise-result", Static)
        await wait_until(pilot, lambda: "syntax error" in str(result.render()), what="the check's result")
        assert "softmax_ce: line 1: syntax error: expected ':'" in str(result.render())
        assert "[failing]" in str(options.get_option_at_index(screen.exercises.index(screen.exercise)).prompt)
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)
