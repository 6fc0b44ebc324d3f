"""The training dashboard: progress, live curves of the loss and of the lesson's target metric, the latest picture and
a log. Step metrics are read from the run's buffer on a timer (2 Hz); other events arrive
as messages through the app (see bridge.py)."""

from __future__ import annotations

import os

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Header, ProgressBar, RichLog

from dlcourse_tui.tui.widgets.keybar import KeyBar
from dlcourse_tui.engine.events import (
    EpochEnded, Evaluated, PictureReady, RunFailed, RunFinished, RunStarted, TableReady,
)
from dlcourse_tui.lessons import headline_chart
from dlcourse_tui.render.text import fmt_metrics, table_of
from dlcourse_tui.tui.bridge import RunHandle
from dlcourse_tui.tui.widgets.curves import Curves
from dlcourse_tui.tui.widgets.picture import Picture
from dlcourse_tui.tui.widgets.status import StatusText
from dlcourse_tui.tui.widgets.walkthrough import WalkthroughPane

TICK = 0.5  # seconds between updates of what the dashboard shows (each repaint takes the GIL from the trainer)
CHART_PERIOD = TICK  # charts are redrawn on the same tick: one frame for status, log, picture and charts


class RunLog(RichLog):
    """The run's log. A write scrolls to the end at once, in the frame that shows the new
    lines: RichLog scrolls after the next refresh, so each batch of lines cost two frames
    (a full pass of the compositor each, the GIL taken from the trainer)."""

    def write(self, content, width=None, expand=False, shrink=True, scroll_end=None, animate=False):  # noqa: ANN001, ANN201, D102, PLR0913
        auto = self.auto_scroll if scroll_end is None else scroll_end
        super().write(content, width, expand, shrink, scroll_end=False if self._size_known else scroll_end,
                      animate=animate)
        if auto and self._size_known:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        return self


def fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class DashboardScreen(Screen):
    """Watch one run train; pause, stop, go back while it goes on."""

    BINDINGS = [
        Binding("p", "pause", "Pause/resume"),
        Binding("s", "stop", "Stop"),
        Binding("k", "knobs", "Change knobs"),
        Binding("o", "folder", "Folder"),
        Binding("w", "app.walkthrough", "Walkthrough"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, handle: RunHandle) -> None:
        super().__init__()
        self.handle = handle
        self.cursor = 0  # how many step points this screen has read
        self.replayed = 0  # how many of handle.events were applied
        self.last_point = None
        self.ready = False  # mounted: its widgets exist (events before that are applied by on_mount)
        self.metric = headline_chart(handle.config.lesson)  # the chart beside the loss: the lesson's target
        self.mono = bool(os.environ.get("NO_COLOR"))
        self._log_lines: list[str] = []  # lines not yet written to the log (written in one batch)
        self._batching = False  # applying a batch of events: their log lines wait for flush_log
        self._diagnosed = False  # the ended run's diagnoses are in the log

    def compose(self) -> ComposeResult:
        yield Header()
        yield StatusText(id="run-status")
        yield ProgressBar(total=None, show_eta=False, id="run-progress")
        with Horizontal(id="dash-body"):
            with Vertical(id="charts"):
                yield Curves("loss", id="loss-chart", mono=self.mono)
                yield Curves(self.metric.title, id="metric-chart", mono=self.mono)
            with Vertical(id="side"):
                yield Picture(id="picture", color=not self.mono)
                yield RunLog(id="log", wrap=True, markup=False, max_lines=500, min_width=20)
                yield WalkthroughPane(id="walk-pane")
        yield KeyBar()

    walk_name = "dashboard"  # as walkthrough conditions name this screen

    @property
    def walk_lesson(self):  # noqa: ANN201 - the run's Lesson, or None for a lesson no longer there
        from dlcourse_tui.errors import UserError
        from dlcourse_tui.lessons import find_lesson

        try:
            return find_lesson(self.handle.config.lesson)
        except UserError:
            return None

    def on_mount(self) -> None:
        cfg = self.handle.config
        self.title = "dlc"
        self.sub_title = f"{cfg.lesson}: {cfg.model} on {cfg.data}"
        self.log_line(f"{cfg.lesson} · {cfg.model} on {cfg.data} · {cfg.train.epochs} epochs"
                      + (f" · variant {cfg.variant}" if cfg.variant else ""))
        for chart in self.query(Curves):  # fixed order: train first, then val
            chart.set_series("train", [], [])
            chart.set_series("val", [], [])
        self.ready = True
        self.tick()  # applies every event so far
        self.set_interval(TICK, self.on_tick)

    # -- reading the run --------------------------------------------------------------
    def catch_up(self) -> None:
        """Apply events this screen has not seen (all of them when it opens late), in one batch:
        of several pictures of the same name only the latest is drawn (a tiny model ends dozens
        of epochs a second, and drawing each would take the UI thread from the keys)."""
        new = self.handle.events[self.replayed:]
        self.replayed += len(new)
        if not new:
            self.log_diagnoses()
            return
        latest = {e.name: i for i, e in enumerate(new) if isinstance(e, PictureReady)}
        self._batching = True
        try:
            for i, event in enumerate(new):
                if isinstance(event, PictureReady) and latest[event.name] != i:
                    continue
                self.apply(event, status=False)
        finally:
            self._batching = False
            self.flush_log()
        self.log_diagnoses()
        self.update_status()

    def log_diagnoses(self) -> None:
        """Once the worker is done: what the run's curves say, in the log (once)."""
        if not self._diagnosed and self.handle.done_event.is_set():
            self._diagnosed = True
            for text in self.handle.diagnoses:
                self.log_line(f"diagnosis: {text}")

    def on_tick(self) -> None:
        """The timer: while this screen is shown, bring it up to date and redraw the charts in
        the same frame (two timers out of phase made two frames, each a full pass of the
        compositor, every half second). Hidden, it does nothing: showing it again catches up."""
        if self.app.screen is self:
            self.tick()
            self.redraw_charts()

    def tick(self) -> None:
        """Read new step points from the buffer into the charts; update the status line."""
        self.catch_up()
        points, self.cursor = self.handle.steps.since(self.cursor)
        if points:
            loss = self.query_one("#loss-chart", Curves)
            metric = self.query_one("#metric-chart", Curves)
            xs = [p.step for p in points]
            if "loss" in points[0].metrics:
                loss.extend("train", xs, [p.metrics.get("loss", float("nan")) for p in points])
            if self.metric.train in points[0].metrics:
                metric.extend("train", xs, [p.metrics.get(self.metric.train, float("nan")) for p in points])
            self.last_point = points[-1]
        self.update_status()

    def redraw_charts(self) -> None:
        """Plot the charts that have new points, if this screen is the one shown."""
        if self.app.screen is self:
            for chart in self.query(Curves):
                chart.refresh_if_needed(background=True)

    def update_status(self) -> None:
        h = self.handle
        started = h.started
        phase = h.phase
        if h.pause_event.is_set() and h.running:
            phase = "paused"
        parts = [phase]
        p = self.last_point
        if started is not None:
            total = started.total_steps
            step = h.final.step if h.final is not None else (p.step if p else started.start_step)
            epochs = started.config["train"]["epochs"]
            epoch = h.final.epoch if isinstance(h.final, RunFinished) else (p.epoch if p else 1)
            parts.append(f"epoch {epoch}/{epochs}")
            parts.append(f"step {step}/{total}")
            bar = self.query_one("#run-progress", ProgressBar)
            bar.update(total=max(total, 1), progress=step)
            if p is not None:
                parts.append(f"{p.samples_per_sec:,.0f} ex/s")
                done = p.step - started.start_step
                if h.running and done > 0 and phase == "training":
                    eta = (total - p.step) * p.elapsed / max(p.step, 1)
                    parts.append(f"ETA {fmt_time(eta)}")
                else:
                    parts.append(f"{fmt_time(p.elapsed)}")
        text = Text("  ".join(parts))
        if isinstance(h.final, RunFailed):
            text = Text.assemble(("failed: ", "bold red"), (h.final.message, "red"))
        elif p is not None and h.final is None:
            text.append("\n" + fmt_metrics(p.metrics), style="dim")
        elif isinstance(h.final, RunFinished):
            text.append("\n" + fmt_metrics(h.final.metrics), style="dim")
        self.query_one("#run-status", StatusText).show(text)

    def apply(self, event, *, status: bool = True) -> None:
        """One non-step event of the run (UI thread)."""
        if isinstance(event, RunStarted):
            verb = f"resumed at step {event.start_step}" if event.resumed else "started"
            self.log_line(f"run {event.run_id} {verb}: {event.num_params:,} parameters, "
                          f"{event.steps_per_epoch} steps/epoch, device {event.device}")
            for name, run_id in event.config.get("upstream", {}).items():
                self.log_line(f"{name}: builds on run {run_id}")
            if event.resumed and self.handle.resume is not None:
                self.load_history(event.start_step)
            self.draw_band(event.steps_per_epoch, int(event.config["train"]["epochs"]))
        elif isinstance(event, EpochEnded):
            self.log_line(f"epoch {event.epoch}: {fmt_metrics(event.metrics)}")
        elif isinstance(event, Evaluated):
            self.log_line(f"epoch {event.epoch} val: {fmt_metrics(event.metrics)}")
            if "val_loss" in event.metrics:
                self.query_one("#loss-chart", Curves).extend("val", [event.step], [event.metrics["val_loss"]])
            if self.metric.val in event.metrics:
                self.query_one("#metric-chart", Curves).extend("val", [event.step], [event.metrics[self.metric.val]])
        elif isinstance(event, PictureReady):
            self.query_one("#picture", Picture).show(event.pixels, f"{event.title} · epoch {event.epoch}")
            if self.app.screen is self:  # seen: the walkthrough may ask for it
                self.app.note(self.walk_lesson, picture=event.name)
        elif isinstance(event, TableReady):
            self.flush_log()
            self.query_one("#log", RichLog).write(table_of(event.title, event.columns, event.rows))
        elif isinstance(event, RunFinished):
            self.log_line(f"run {event.status} at step {event.step}: {fmt_metrics(event.metrics)}")
            if event.status == "stopped":
                self.log_line("checkpoint saved; resume with: dlc run "
                              f"{self.handle.config.lesson} --resume {self.handle.run_id}")
        elif isinstance(event, RunFailed):
            self.log_line(f"FAILED: {event.message}")
        if status:
            self.update_status()

    def draw_band(self, steps_per_epoch: int, epochs: int) -> None:
        """Draw the lesson's expected band (reference.json: 10-90 % of its default run over
        several seeds) on the validation curves' charts, at the steps its epochs end."""
        from dlcourse_tui.course.reference import band_series, load_reference

        lesson = self.walk_lesson
        reference = load_reference(lesson.folder) if lesson is not None else None
        for chart_id, name in (("#loss-chart", "val_loss"), ("#metric-chart", self.metric.val)):
            chart = self.query_one(chart_id, Curves)
            for series, (xs, ys) in band_series(reference, name, steps_per_epoch, epochs).items():
                chart.set_series(series, xs, ys)

    def load_history(self, upto: int) -> None:
        """Put the curves of the run being resumed (up to its checkpoint step) before the new points."""
        from dlcourse_tui.engine.runs import metric_series

        lines = [m for m in self.handle.resume.metrics() if m.get("step", 0) <= upto]
        for chart_id, kind, name, series in (("#loss-chart", "step", "loss", "train"), ("#loss-chart", "eval", "val_loss", "val"),
                                             ("#metric-chart", "step", self.metric.train, "train"),
                                             ("#metric-chart", "eval", self.metric.val, "val")):
            chart = self.query_one(chart_id, Curves)
            xs, ys = metric_series(lines, kind, name)
            new = [(x, y) for x, y in zip(*chart.series.get(series, ([], []))) if x > upto]
            chart.set_series(series, xs + [x for x, _ in new], ys + [y for _, y in new])

    def log_line(self, line: str) -> None:
        """Add a line to the log: written now unless a batch of events is being applied."""
        self._log_lines.append(line)
        if not self._batching:
            self.flush_log()

    def flush_log(self) -> None:
        """Write the pending lines in one go: one wrap, one scroll and one layout for a batch
        (a tiny model logs dozens of epochs between two ticks; each write re-laid the screen out)."""
        if self._log_lines:
            lines, self._log_lines = self._log_lines, []
            self.query_one("#log", RichLog).write(Text("\n".join(lines)))

    def on_unmount(self) -> None:
        self.ready = False

    def on_screen_resume(self) -> None:
        self.tick()  # what happened while hidden; the charts show what they had until the next tick draws them

    # -- keys -------------------------------------------------------------------------
    def action_pause(self) -> None:
        h = self.handle
        if not h.running:
            self.notify("the run has ended", timeout=2)
            return
        paused = h.toggle_pause()
        self.log_line("paused (p resumes)" if paused else "resumed")
        self.update_status()

    def action_stop(self) -> None:
        h = self.handle
        if not h.running:
            self.notify("the run has ended", timeout=2)
            return
        h.stop()
        h.phase = "stopping"
        self.log_line("stopping after this step; saving a checkpoint…")
        self.update_status()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_folder(self) -> None:
        if self.handle.started is None:
            self.notify("the run folder is not created yet", timeout=2)
            return
        path = self.handle.started.run_dir
        self.log_line(f"folder: {path}")
        self.notify(str(path), title="run folder", timeout=6)

    def action_knobs(self) -> None:
        from dlcourse_tui.lessons import find_lesson
        from dlcourse_tui.tui.screens.picker import PickerScreen

        self.app.push_screen(PickerScreen(find_lesson(self.handle.config.lesson)))
