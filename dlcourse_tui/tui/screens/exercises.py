"""The exercises of one lesson: what to write, the learner's file, the last check's result,
and keys to start one (copy its starter) and to check it again. Checks run in a worker
process (exercises/runner.py) waited on from a thread, so the app never imports torch here
and learner code that loops forever cannot freeze it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, OptionList, Static

from dlcourse_tui.tui.widgets.keybar import KeyBar

if TYPE_CHECKING:
    from dlcourse_tui.exercises.registry import Exercise
    from dlcourse_tui.lessons import Lesson


class ExerciseScreen(Screen):
    """The lesson's exercises; c checks the one under the cursor, s starts it."""

    walk_name = "exercises"

    BINDINGS = [
        Binding("c", "check", "Check again"),
        Binding("s", "start", "Start"),
        Binding("escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    #exercise-list { height: auto; max-height: 8; margin: 0 1; }
    #exercise-detail { height: 1fr; padding: 0 1; }
    #exercise-result { height: auto; padding: 0 1; }
    """

    def __init__(self, lesson: "Lesson") -> None:
        super().__init__()
        self.lesson = lesson
        from dlcourse_tui.exercises.registry import ExerciseError, lesson_exercises

        try:
            self.exercises = lesson_exercises(lesson)
            self.problem = ""
        except ExerciseError as e:
            self.exercises, self.problem = [], str(e)
        self.checking: str | None = None  # the exercise being checked now

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield OptionList(*[self._label(ex) for ex in self.exercises], id="exercise-list")
            with VerticalScroll(id="exercise-detail"):
                yield Static(id="exercise-task", markup=False)
                yield Static(id="exercise-result", markup=False)
        yield KeyBar()

    def on_mount(self) -> None:
        self.title = "dlc"
        self.sub_title = f"exercises · {self.lesson.title}"
        if not self.exercises:
            self.query_one("#exercise-task", Static).update(self.problem or f"Lesson {self.lesson.id} has no exercises yet.")
            return
        options = self.query_one(OptionList)
        options.highlighted = 0
        options.focus()
        self.show(self.exercises[0])

    @property
    def exercise(self) -> "Exercise | None":
        i = self.query_one(OptionList).highlighted
        return self.exercises[i] if self.exercises and i is not None else None

    def _label(self, ex: "Exercise") -> str:
        from dlcourse_tui.exercises.workspace import state

        return f"{ex.name} — {ex.title}  [{'checking…' if self.checking == ex.name else state(ex)}]"

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if 0 <= event.option_index < len(self.exercises):
            self.show(self.exercises[event.option_index])

    def show(self, ex: "Exercise") -> None:
        """The task, the file and the last result of `ex`."""
        from dlcourse_tui.exercises.messages import outcome_lines
        from dlcourse_tui.exercises.workspace import last_result, learner_file

        path = learner_file(ex)
        paragraphs = "\n\n".join(" ".join(par.split()) for par in ex.task.split("\n\n"))  # re-wrapped to the pane
        task = [f"{ex.title}", "", paragraphs, ""]
        task.append(f"Your file: {path}" if path.exists() else f"Not started: s copies the starter to {path}")
        if ex.use:
            task.append(f"Train with it: dlc run {ex.lesson} --use {ex.name}  ({ex.use})")
        self.query_one("#exercise-task", Static).update("\n".join(task))
        last = last_result(ex)
        if self.checking == ex.name:
            result = "checking…"
        elif last is None:
            result = "Not checked yet: c checks it." if path.exists() else ""
        else:
            outcome, same = last
            result = "\n".join(outcome_lines(ex, path, outcome))
            if not same:
                result = "(your file changed since this check: c checks it again)\n" + result
        self.query_one("#exercise-result", Static).update(result)

    def refresh_list(self) -> None:
        options = self.query_one(OptionList)
        for i, ex in enumerate(self.exercises):
            options.replace_option_prompt_at_index(i, self._label(ex))

    def action_start(self) -> None:
        from dlcourse_tui.errors import UserError
        from dlcourse_tui.exercises.workspace import start

        ex = self.exercise
        if ex is None:
            return
        try:
            path, written = start(ex)
        except UserError as e:
            self.notify(str(e), severity="error")
            return
        self.notify(f"{'copied the starter to' if written else 'your file is'} {path}", timeout=6)
        self.refresh_list()
        self.show(ex)

    def action_check(self) -> None:
        from dlcourse_tui.exercises.workspace import learner_file

        ex = self.exercise
        if ex is None or self.checking:
            return
        if not learner_file(ex).exists():
            self.notify("start it first: s copies the starter", timeout=4)
            return
        self.checking = ex.name
        self.refresh_list()
        self.show(ex)
        self._check(ex)

    @work(thread=True, exclusive=True, group="exercise-check", exit_on_error=False)
    def _check(self, ex: "Exercise") -> None:
        """Run the checks in their worker process and wait here, off the UI's thread."""
        from dlcourse_tui.exercises.runner import run_checks
        from dlcourse_tui.exercises.workspace import learner_file, save_result

        path = learner_file(ex)
        try:
            save_result(ex, path, run_checks(ex, path))
        finally:
            self.app.call_from_thread(self._checked, ex)

    def _checked(self, ex: "Exercise") -> None:
        self.checking = None
        if self.app.screen is self:  # else on_screen_resume shows it
            self.refresh_list()
            if self.exercise is ex:
                self.show(ex)

    def on_screen_resume(self) -> None:
        """Back from help (or a file edited meanwhile): the states and the result as they are now."""
        if self.exercises:
            self.refresh_list()
            if self.exercise is not None:
                self.show(self.exercise)

    def action_back(self) -> None:
        self.app.pop_screen()
