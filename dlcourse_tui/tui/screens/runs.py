"""Past runs from the run store: a table, several selected runs' curves on one chart,
and one run's curves on its own screen. The same files `dlc runs show` reads."""

from __future__ import annotations

import os
from datetime import datetime

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from dlcourse_tui.tui.widgets.keybar import KeyBar
from dlcourse_tui.course.reference import band_series, load_reference
from dlcourse_tui.engine.runs import RunRecord, list_runs, metric_series, steps_per_epoch
from dlcourse_tui.lessons import headline_chart
from dlcourse_tui.render.text import metric_text
from dlcourse_tui.tui.widgets.curves import Curves

SMOOTHING = 0.6  # EMA weight of the smoothing toggle (TensorBoard's default, debiased the same way)
RESUMABLE = ("stopped", "interrupted")

# (label, line type, metric name) cycled by `v`
METRICS = [
    ("train loss", "step", "loss"),
    ("val loss", "eval", "val_loss"),
    ("train acc", "step", "acc"),
    ("val acc", "eval", "val_acc"),
]


def short_id(r: RunRecord) -> str:
    """The time part of a run id (HHMMSS), with its -N suffix when one was added."""
    parts = r.id.split("-")
    if len(parts) < 3 or not parts[1].isdigit():
        return r.id[:12]
    suffix = f"-{parts[-1]}" if parts[-1].isdigit() and len(parts) > 4 else ""
    return parts[1] + suffix


def run_row(r: RunRecord) -> tuple[str, ...]:
    """lesson, model, key knobs, the lesson's headline metric ("accuracy 96.6%", "class
    coverage 10"), val loss, status, date of one run."""
    try:
        cfg = r.config
    except (OSError, ValueError):
        cfg = {}
    summary = r.summary
    train = cfg.get("train", {})
    knobs = f"lr {train.get('lr', '?'):g} e{train.get('epochs', '?')} bs{train.get('batch_size', '?')}" if train else ""
    if cfg.get("variant"):
        knobs = f"{cfg['variant']} {knobs}"
    metrics = summary.get("metrics", {})
    chart = headline_chart(str(cfg.get("lesson", "")))
    value = metrics.get(chart.val)
    result = f"{chart.title} {metric_text(chart.val, value)}" if isinstance(value, (int, float)) else ""
    loss = metrics.get("val_loss")
    date = summary.get("finished") or summary.get("updated") or ""
    try:
        date = datetime.fromisoformat(date).strftime("%m-%d %H:%M")
    except ValueError:
        pass
    return (
        cfg.get("lesson", "?"),
        cfg.get("model", {}).get("name", "?"),
        knobs,
        result,
        f"{loss:.3f}" if isinstance(loss, (int, float)) else "",
        r.status,
        date,
    )


class RunsScreen(Screen):
    """Every run in the store; space selects, enter opens one, v changes the metric,
    s smooths the curves, u resumes a stopped run."""

    walk_name = "runs"  # as walkthrough conditions name this screen
    BINDINGS = [
        Binding("space", "select", "Select"),
        Binding("enter", "open", "Open"),
        Binding("v", "metric", "Metric"),
        Binding("s", "smooth", "Smooth"),
        Binding("u", "resume", "Resume"),
        Binding("g", "reload", "Reload", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, focus: str | None = None) -> None:
        super().__init__()
        self.records: list[RunRecord] = []
        self.selected: set[str] = set()
        self.metric = 0
        self.smoothing = 0.0
        self.focus_id = focus  # the run to put the cursor on when the table is first filled

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-hint", markup=False)
        yield Curves("", id="runs-chart", mono=bool(os.environ.get("NO_COLOR")))
        yield KeyBar()

    def on_mount(self) -> None:
        self.title = "dlc"
        self.sub_title = "runs"
        table = self.query_one(DataTable)
        # what tells runs apart first: at 80 columns the knobs and date may scroll off to the right
        table.add_columns(" ", "run", "status", "result", "lesson", "model", "knobs", "date")
        self.load()
        if self.focus_id is not None:
            ids = [r.id for r in self.records]
            if self.focus_id in ids:
                table.move_cursor(row=ids.index(self.focus_id), animate=False)
                self.show_chart()
        table.focus()
        self.set_interval(2.0, self._refresh_chart)

    def load(self) -> None:
        table = self.query_one(DataTable)
        here = self.current()
        table.clear()
        self.records = sorted(list_runs(), key=lambda r: r.id, reverse=True)  # newest first
        for r in self.records:
            short = short_id(r)
            lesson, model, knobs, result, _loss, status, date = run_row(r)
            table.add_row("●" if r.id in self.selected else " ", short, status, result, lesson, model, knobs, date,
                          key=r.id)
        ids = [r.id for r in self.records]
        if here is not None and here.id in ids:
            table.move_cursor(row=ids.index(here.id), animate=False)
        self.show_chart()

    def current(self) -> RunRecord | None:
        table = self.query_one(DataTable)
        if not self.records or table.cursor_row < 0:
            return None
        return self.records[min(table.cursor_row, len(self.records) - 1)]

    def action_select(self) -> None:
        r = self.current()
        if r is None:
            return
        if r.id in self.selected:
            self.selected.discard(r.id)
        else:
            self.selected.add(r.id)
        table = self.query_one(DataTable)
        table.update_cell(r.id, table.ordered_columns[0].key, "●" if r.id in self.selected else " ")
        self.show_chart()

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        if not self.selected:
            self.show_chart()

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open()

    def show_chart(self) -> None:
        label, kind, name = METRICS[self.metric]
        chart = self.query_one("#runs-chart", Curves)
        chart.clear_series()
        chosen = [r for r in self.records if r.id in self.selected]
        if not chosen and self.current() is not None:
            chosen = [self.current()]
        for r in chosen:
            xs, ys = metric_series(r.metrics(), kind, name)
            chart.set_series(f"{short_id(r)} {run_row(r)[1]}", xs, ys)
        chart.set_smoothing(self.smoothing)
        smooth = f" · EMA {self.smoothing:g}, raw faint" if self.smoothing else ""
        chart.title = label + smooth
        n = len(self.selected)
        self.query_one("#runs-hint", Static).update(
            f"{len(self.records)} runs · {n} selected · {label}{smooth} · v metric · s smooth" if self.records
            else "no runs yet: open a lesson and press r")
        chart.refresh_if_needed()

    def _refresh_chart(self) -> None:
        self.query_one("#runs-chart", Curves).refresh_if_needed()

    def action_metric(self) -> None:
        self.metric = (self.metric + 1) % len(METRICS)
        self.show_chart()

    def action_smooth(self) -> None:
        self.smoothing = 0.0 if self.smoothing else SMOOTHING
        self.show_chart()

    def action_resume(self) -> None:
        """Continue the run under the cursor from its checkpoint, on a new dashboard."""
        r = self.current()
        if r is None:
            return
        status = r.status
        if status not in RESUMABLE:
            why = {"completed": "it finished all its epochs; to train longer: "
                                f"dlc run {run_row(r)[0]} --resume {r.id} --epochs N",
                   "running": "it is still running", "failed": "it failed; start a new run instead"}
            self.notify(f"run {short_id(r)} cannot be resumed: {why.get(status, status)}", severity="warning", timeout=5)
            return
        if not r.checkpoint.is_file():
            self.notify(f"run {short_id(r)} has no checkpoint to resume from", severity="warning", timeout=5)
            return
        from dlcourse_tui.engine.config import RunConfig

        try:
            config = RunConfig.from_dict(r.config)
        except (KeyError, TypeError, ValueError, OSError) as e:
            self.notify(f"run {short_id(r)}: its config.json cannot be read ({e})", severity="error", timeout=6)
            return
        self.app.start_run(config, resume=r)

    def on_screen_resume(self) -> None:
        if self.is_mounted and self.records:
            self.load()  # a run may have ended or been resumed meanwhile

    def action_reload(self) -> None:
        self.load()

    def action_open(self) -> None:
        r = self.current()
        if r is not None:
            self.app.push_screen(RunScreen(r))

    def action_back(self) -> None:
        self.app.pop_screen()


class RunScreen(Screen):
    """One past run: its curves of the loss and of its lesson's target metric, and its summary."""

    walk_name = "run"
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, record: RunRecord) -> None:
        super().__init__()
        self.record = record
        self.metric = headline_chart(str(record.config.get("lesson", "")))  # the chart beside the loss

    @property
    def lesson(self):  # noqa: ANN201 - the run's Lesson, or None for a lesson no longer there
        from dlcourse_tui.errors import UserError
        from dlcourse_tui.lessons import find_lesson

        try:
            return find_lesson(str(self.record.config.get("lesson", "")))
        except UserError:
            return None

    def compose(self) -> ComposeResult:
        mono = bool(os.environ.get("NO_COLOR"))
        yield Header()
        yield Static("", id="run-summary", markup=False)
        with Horizontal(id="run-charts"):
            yield Curves("loss", id="run-loss", mono=mono)
            yield Curves(self.metric.title, id="run-metric", mono=mono)
        yield KeyBar()

    def on_mount(self) -> None:
        r = self.record
        self.title = "dlc"
        self.sub_title = r.id
        lesson, model, knobs, result, loss, status, date = run_row(r)
        s = r.summary
        extra = f"\n{s['message']}" if s.get("message") else ""
        extra += "".join(f"\ndiagnosis: {d}" for d in s.get("diagnoses", []))
        self.query_one("#run-summary", Static).update(
            f"{r.id}\n{lesson} · {model} · {knobs} · {status} · {result or 'no result yet'} · val loss {loss or '-'}"
            f"{extra}\n{r.path}")
        m = r.metrics()
        loss_chart = self.query_one("#run-loss", Curves)
        metric_chart = self.query_one("#run-metric", Curves)
        loss_chart.set_series("train", *metric_series(m, "step", "loss"))
        loss_chart.set_series("val", *metric_series(m, "eval", "val_loss"))
        metric_chart.set_series("train", *metric_series(m, "step", self.metric.train))
        metric_chart.set_series("val", *metric_series(m, "eval", self.metric.val))
        reference = load_reference(self.lesson.folder) if self.lesson is not None else None
        per_epoch = steps_per_epoch(m)
        for chart, name in ((loss_chart, "val_loss"), (metric_chart, self.metric.val)):
            for series, (xs, ys) in band_series(reference, name, per_epoch, r.config.get("train", {}).get("epochs")).items():
                chart.set_series(series, xs, ys)

    def action_back(self) -> None:
        self.app.pop_screen()
