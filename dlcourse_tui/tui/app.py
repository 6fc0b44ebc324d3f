"""The dlc app: lesson browser first, then picker, dashboard, runs and help screens.

Nothing here imports torch: the first paint shows the browser, then, once the learner's
keys rest for a second, torch is imported on a worker thread so a run starts quickly.
Runs train on Textual thread workers (bridge.py).
"""

from __future__ import annotations

import gc
import itertools
import sys
import time
from pathlib import Path

from textual import events, work
from textual.app import App
from textual.binding import Binding

from dlcourse_tui.tui.bridge import RunHandle, _Done, supervise
from dlcourse_tui.tui.messages import RunEvent

_T0 = time.perf_counter()
HELP_SCREENS_KEPT = 8  # help modals kept built, one per (screen, keys)
SWITCH_INTERVAL = 0.001  # seconds a thread may hold the GIL while another waits (see start_run)
# Seconds without a key press before torch is imported in the background. Loading torch's
# libraries holds the GIL for up to ~0.2 s at a time: keys pressed meanwhile waited that long.
# A run started sooner imports it on its own thread, as it would anyway.
PRELOAD_IDLE = 1.0


def _course_commands():
    """The palette's lessons, models and runs (loaded when the palette first opens)."""
    from dlcourse_tui.tui.commands import CourseCommands

    return CourseCommands


class DLCApp(App):
    """Learn deep learning for computer vision by doing."""

    CSS_PATH = "app.tcss"
    TITLE = "dlc"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {_course_commands}
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("R", "runs", "Runs", key_display="R"),
        Binding("D", "dashboard", "Dashboard", key_display="D", show=False),
        Binding("w", "walkthrough", "Walkthrough", show=False),
        Binding("n", "walk_next", "Next step", show=False),
        Binding("h", "walk_hint", "Hint", show=False),
        Binding("c", "walk_check", "Check the step", show=False),
        Binding("x", "walk_reset", "Reset the walkthrough", show=False),
        Binding("E", "exercises", "Exercises", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]
    WALK_ACTIONS = ("walk_next", "walk_hint", "walk_check", "walk_reset")  # only with a walkthrough pane shown

    def __init__(self, *, preload_torch: bool = True) -> None:
        super().__init__()
        self.preload_torch = preload_torch
        self.runs: list[RunHandle] = []
        self.first_paint_s: float | None = None
        self.torch_at_first_paint: bool | None = None
        self._help_screens: dict[tuple, str] = {}  # (title, keys) -> installed screen name
        self._help_ids = itertools.count()
        self._preload_timer = None  # the timer that starts the torch import once keys rest
        from dlcourse_tui.tui.walk import Walks

        self.walks = Walks()
        self._walk_lesson = None  # the lesson whose walkthrough runs, runs and help screens note
        self._walk_timer = None  # a pending check of the shown walkthrough (keys come fast)
        self._skipped: set[str] = set()  # prediction questions skipped in this session

    def on_mount(self) -> None:
        from dlcourse_tui.tui.screens.browser import BrowserScreen

        self.push_screen(BrowserScreen())
        self.call_after_refresh(self._first_paint)
        self.screen_change_signal.subscribe(self, self._screen_changed)

    def _first_paint(self) -> None:
        self.first_paint_s = time.perf_counter() - _T0
        self.torch_at_first_paint = "torch" in sys.modules
        # Textual and the app live as long as the process: out of the collector's sight, a full
        # collection no longer walks them (one of ~65k objects took 65-75 ms of a key press).
        gc.freeze()
        if self.preload_torch:
            # the import thread holds the GIL between C calls; a key waits 1 ms for it, not 5
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
            self._preload_timer = self.set_timer(PRELOAD_IDLE, self._start_preload)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and self._preload_timer is not None:
            self._preload_timer.reset()  # the learner is moving around: import torch when they stop
        await super().on_event(event)

    def _start_preload(self) -> None:
        self._preload_timer = None
        self._preload()

    @work(thread=True, group="preload", exit_on_error=False)
    def _preload(self) -> None:
        """Import torch and the engine in the background (the first run starts sooner), then
        keep what was imported out of the garbage collector's way. Freezing costs nothing;
        collecting first (bridge.settle_heap) held the GIL for 100-300 ms, keys waiting: a run
        collects once before it starts, when nobody is typing."""
        import dlcourse_tui.engine.session  # noqa: F401

        gc.freeze()

    # -- runs -----------------------------------------------------------------------------
    @property
    def current_run(self) -> RunHandle | None:
        return self.runs[-1] if self.runs else None

    def start_run(self, config, lesson=None, *, resume=None) -> RunHandle | None:
        """Start `config` on a thread worker and open its dashboard; a run still going is stopped.

        With `resume` (a RunRecord with a checkpoint), the run continues that record. With the
        walkthrough shown, the lesson's open prediction questions for this run are asked first
        (then the run starts once they are answered or skipped, and None is returned).
        """
        if resume is None and lesson is not None and self.walks.visible:
            walk = self.walks.of(lesson)
            questions = [q for q in (walk.questions_before(config.to_dict()) if walk else []) if q.id not in self._skipped]
            if questions:
                self._ask(walk, questions, 0, lambda: self._start(config, None))
                return None
        return self._start(config, resume)

    def _ask(self, walk, questions, i: int, then) -> None:  # noqa: ANN001
        """Ask questions[i:] one modal at a time, keep the answers, then call `then`."""
        from dlcourse_tui.tui.screens.predict import PredictScreen

        if i >= len(questions):
            then()
            return

        def answered(given) -> None:  # noqa: ANN001
            if given is None:
                self._skipped.add(questions[i].id)
            else:
                walk.answer(questions[i], given)
            self._ask(walk, questions, i + 1, then)

        self.push_screen(PredictScreen(questions[i], i + 1, len(questions)), answered)

    def _start(self, config, resume) -> RunHandle | None:
        from dlcourse_tui.errors import UserError
        from dlcourse_tui.tui.screens.dashboard import DashboardScreen

        then = None
        if resume is None:  # a lesson that builds on another's run: find it, or train that first
            try:
                config, first = self._upstream_first(config)
            except UserError as e:
                self.notify(str(e), title="cannot start", severity="error", timeout=10)
                return None
            if first is not None:
                then, config = config, first
        for old in self.runs:
            if old.running:
                old.stop()
        # A training thread runs Python between its torch ops and holds the GIL meanwhile; the UI
        # thread needs it dozens of times per key press. The default 5 ms switch interval made a
        # key take 200 ms (p50) behind a tiny MLP; 1 ms gives the UI its turns sooner.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        handle = RunHandle(config=config, app=self, resume=resume, then=then)
        self.runs.append(handle)
        self.run_worker(lambda: supervise(handle), name=f"train {config.lesson}", group="train", thread=True,
                        exit_on_error=False)
        # one dashboard on the stack at a time
        while len(self.screen_stack) > 2 and not isinstance(self.screen, DashboardScreen):
            self.pop_screen()
        if isinstance(self.screen, DashboardScreen):
            self.switch_screen(DashboardScreen(handle))
        else:
            self.push_screen(DashboardScreen(handle))
        return handle

    def _upstream_first(self, config):  # noqa: ANN001, ANN202 - (RunConfig, RunConfig | None)
        """`config` with the runs it builds on filled in, and the config to train first when
        one is missing (the other lesson's default; this run starts once that one completes)."""
        from dlcourse_tui.engine.upstream import resolve_upstream, upstream_config
        from dlcourse_tui.lessons import find_lesson

        lesson = find_lesson(config.lesson)
        config, missing = resolve_upstream(config, lesson.needs)
        if not missing:
            return config, None
        need = missing[0]
        self.notify(f"{lesson.id} builds on {need.describe()} ({need.name}); you have none yet, so "
                    f"{need.lesson}'s default trains first, then this run starts.", title="building on an earlier run",
                    timeout=12)
        return config, upstream_config(need)

    def on_run_event(self, message: RunEvent) -> None:
        from dlcourse_tui.engine.events import RunFailed, RunFinished, RunStarted
        from dlcourse_tui.tui.screens.dashboard import DashboardScreen

        handle, event = message.handle, message.event
        if isinstance(event, _Done):
            if handle.phase in ("preparing", "training", "stopping"):
                handle.phase = "ended"
        else:  # the event is in handle.events already (the bridge put it there)
            if isinstance(event, RunStarted):
                handle.phase = "training"
            elif isinstance(event, RunFinished):
                handle.phase = event.status
                if event.status == "completed":
                    self.notify(f"{handle.config.lesson}: run completed", timeout=4)
                else:
                    self.notify(f"{handle.config.lesson}: run stopped, checkpoint saved", timeout=4)
            elif isinstance(event, RunFailed):
                handle.phase = "failed"
                self.notify(event.message, title="run failed", severity="error", timeout=15)
            if isinstance(event, (RunFinished, RunFailed)):
                self._run_ended(handle)
                if handle.then is not None:  # it was trained for another run to build on
                    if isinstance(event, RunFinished) and event.status == "completed":
                        self._start(handle.then, None)
                    else:
                        self.notify(f"{handle.config.lesson} did not complete, so {handle.then.lesson} (which builds "
                                    "on it) did not start; resume it from the runs screen (R), then start again.",
                                    severity="warning", timeout=12)
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen) and screen.handle is handle and screen.ready and screen.is_attached:
                screen.catch_up()
                screen.update_status()

    # -- walkthroughs -------------------------------------------------------------------
    def walk_lesson(self):  # noqa: ANN201 - a Lesson or None
        """The lesson whose walkthrough the current screen shows (or the last one followed)."""
        if not self.screen_stack:  # starting or closing
            return self._walk_lesson
        lesson = getattr(self.screen, "walk_lesson", None)
        if lesson is not None:
            self._walk_lesson = lesson
        return self._walk_lesson

    def note(self, lesson, **did) -> None:  # noqa: ANN001, ANN003
        """Record what the learner did in `lesson`'s walkthrough; with the pane shown, check
        its step soon (a burst of keys checks once)."""
        if lesson is None:
            return
        self.walks.note(lesson, check=False, **did)
        if self.walks.visible:
            if self._walk_timer is not None:
                self._walk_timer.stop()
            self._walk_timer = self.set_timer(0.15, self._check_walk)

    def _check_walk(self) -> None:
        self._walk_timer = None
        lesson = self.walk_lesson()
        walk = self.walks.of(lesson) if lesson is not None else None
        ticked = walk.check() if walk is not None else []
        if ticked:
            self.notify(f"step done: {walk.steps[[s.id for s in walk.steps].index(ticked[0])].do}", title="walkthrough",
                        timeout=5, markup=False)
        self.refresh_walk(tuple(ticked))

    def refresh_walk(self, just_ticked: tuple[str, ...] = ()) -> None:
        """Redraw the current screen's walkthrough pane, if it has one and it is shown."""
        from dlcourse_tui.tui.widgets.walkthrough import WalkthroughPane

        if not self.screen_stack:
            return
        panes = list(self.screen.query(WalkthroughPane))
        lesson = self.walk_lesson()
        for pane in panes:
            pane.set_class(self.walks.visible, "shown")
            self.screen.set_class(self.walks.visible, "walking")
            if self.walks.visible and lesson is not None:
                pane.show(self.walks.of(lesson), lesson_id=lesson.id, error=self.walks.errors.get(lesson.id, ""),
                          just_ticked=just_ticked)

    def _screen_changed(self, screen) -> None:  # noqa: ANN001
        name = getattr(screen, "walk_name", "")
        if name:
            self.note(self.walk_lesson(), screen=name)
        self.refresh_walk()

    def _run_ended(self, handle: RunHandle) -> None:
        """A run ended: tick its lesson's step, mark the predictions made for it."""
        from dlcourse_tui.errors import UserError
        from dlcourse_tui.lessons import find_lesson

        try:
            lesson = find_lesson(handle.config.lesson)
        except UserError:
            return
        walk = self.walks.of(lesson)
        if walk is None:
            return
        ticked = walk.check()
        marked = walk.reveal_after(handle.run_id) + walk.reveal_pending() if handle.run_id else []
        for q, a in marked:
            verdict = "right" if a.right else "not quite"
            seen = f" Your run showed: {a.observed}." if a.observed is not None else ""
            self.notify(f"{q.ask}\nYou said {a.given}: {verdict}. {q.explain}{seen}", title="prediction",
                        severity="information" if a.right else "warning", timeout=20, markup=False)
        if ticked:
            self.notify("walkthrough step done", timeout=4)
        self.refresh_walk(tuple(ticked))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.WALK_ACTIONS:
            from dlcourse_tui.tui.widgets.walkthrough import WalkthroughPane

            return bool(self.screen_stack) and self.walks.visible and bool(self.screen.query(WalkthroughPane))
        return True

    def action_walkthrough(self) -> None:
        """Show or hide the walkthrough pane (on the lesson browser and the dashboard)."""
        from dlcourse_tui.tui.widgets.walkthrough import WalkthroughPane

        if not self.screen.query(WalkthroughPane):
            self.notify("the walkthrough pane is on the lesson browser and the dashboard", timeout=3)
            return
        self.walks.visible = not self.walks.visible
        lesson = self.walk_lesson()
        if self.walks.visible and lesson is not None:
            self.walks.note(lesson, check=False, opened=True, screen=getattr(self.screen, "walk_name", ""))
            self._check_walk()
        self.refresh_walk()
        self.refresh_bindings()

    def _walk(self):  # noqa: ANN202
        lesson = self.walk_lesson()
        return self.walks.of(lesson) if lesson is not None else None

    def action_walk_next(self) -> None:
        walk = self._walk()
        if walk is not None:
            walk.next()
            self.refresh_walk(tuple(walk.progress.done[-1:]) if walk.current and walk.current.id in walk.progress.done else ())

    def action_walk_hint(self) -> None:
        walk = self._walk()
        if walk is not None and walk.hint() is None:
            self.notify("no more hints for this step", timeout=2)
        self.refresh_walk()

    def action_walk_check(self) -> None:
        self._check_walk()

    def action_walk_reset(self) -> None:
        from dlcourse_tui.tui.screens.predict import ConfirmScreen

        walk, lesson = self._walk(), self.walk_lesson()
        if walk is None:
            return

        def reset(yes: bool | None) -> None:
            if yes:
                walk.reset()
                self._skipped.clear()
                self.notify(f"{lesson.title}: walkthrough progress forgotten (your runs stay)", timeout=4)
            self.refresh_walk()

        self.push_screen(ConfirmScreen(f"Forget your progress and answers in “{lesson.title}”? Your runs stay."), reset)

    def stop_all_runs(self) -> None:
        for handle in self.runs:
            if handle.running:
                handle.stop()

    def exit(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        """Quitting stops every run first (each saves its checkpoint), so no thread outlives the app."""
        self.stop_all_runs()
        super().exit(*args, **kwargs)

    async def action_quit(self) -> None:
        self.stop_all_runs()
        self.exit()

    # -- screens --------------------------------------------------------------------------
    def browser(self):
        """Pop back to the lesson browser (the bottom screen) and return it."""
        from dlcourse_tui.tui.screens.browser import BrowserScreen

        while len(self.screen_stack) > 1 and not isinstance(self.screen, BrowserScreen):
            self.pop_screen()
        return self.screen

    def open_lesson(self, lesson_id: str) -> None:
        """Show lesson `lesson_id` in the browser (the command palette's lesson hits)."""
        self.browser().select_lesson(lesson_id)

    def open_model(self, lesson_id: str, model: str) -> None:
        """The picker of lesson `lesson_id` with `model` chosen (the palette's model hits)."""
        from dlcourse_tui.tui.screens.picker import PickerScreen

        browser = self.browser()
        browser.select_lesson(lesson_id)
        self.push_screen(PickerScreen(browser.lesson, model=model))

    def open_run(self, run_id: str) -> None:
        """The runs screen with run `run_id` under the cursor and its curves on the chart."""
        from dlcourse_tui.tui.screens.runs import RunsScreen

        self.browser()
        self.push_screen(RunsScreen(focus=run_id))

    def action_help(self) -> None:
        from dlcourse_tui.tui.screens.help import HelpScreen, screen_keys

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        key = (self.screen.sub_title or type(self.screen).__name__, tuple(screen_keys(self.screen)))
        name = self._help_screens.pop(key, None)
        if name is None:  # built once per (screen, keys): mounting a modal anew took ~100 ms while a run trained
            name = f"help-{next(self._help_ids)}"
            self.install_screen(HelpScreen(list(key[1]), key[0]), name)
        self._help_screens[key] = name  # most recently used last
        while len(self._help_screens) > HELP_SCREENS_KEPT:
            self.uninstall_screen(self._help_screens.pop(next(iter(self._help_screens))))
        self.push_screen(name)

    def get_system_commands(self, screen):  # noqa: ANN001, ANN201 - Textual's SystemCommand iterator
        """The palette's own commands, and the lesson's exercises (also key E)."""
        from textual.app import SystemCommand

        yield from super().get_system_commands(screen)
        yield SystemCommand("Exercises", "the lesson's exercises: write the function, check it, train with it (E)",
                            self.action_exercises)

    def action_exercises(self) -> None:
        """The exercises of the lesson the browser shows (write, check, then --use)."""
        from dlcourse_tui.tui.screens.browser import BrowserScreen
        from dlcourse_tui.tui.screens.exercises import ExerciseScreen

        browser = next((s for s in self.screen_stack if isinstance(s, BrowserScreen)), None)
        if browser is not None and browser.lesson is not None and not isinstance(self.screen, ExerciseScreen):
            self.push_screen(ExerciseScreen(browser.lesson))

    def action_runs(self) -> None:
        from dlcourse_tui.tui.screens.runs import RunsScreen

        if not isinstance(self.screen, RunsScreen):
            self.push_screen(RunsScreen())

    def action_dashboard(self) -> None:
        from dlcourse_tui.tui.screens.dashboard import DashboardScreen

        handle = self.current_run
        if handle is None:
            self.notify("no run yet: press r on a lesson", timeout=3)
            return
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen) and screen.handle is handle:
                while self.screen is not screen:
                    self.pop_screen()
                return
        self.push_screen(DashboardScreen(handle))


def main() -> None:
    DLCApp().run()


if __name__ == "__main__":
    main()
