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
from textual.widgets import DataTable, Footer, Header, Static

from dlcourse_tui.engine.runs import RunRecord, list_runs, metric_series
from dlcourse_tui.tui.widgets.curves import Curves

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
    """lesson, model, key knobs, final metrics, status, date of one run."""
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
    acc = metrics.get("val_acc")
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
        f"{acc * 100:.1f}%" if isinstance(acc, (int, float)) else "",
        f"{loss:.3f}" if isinstance(loss, (int, float)) else "",
        r.status,
        date,
    )


class RunsScreen(Screen):
    """Every run in the store; space selects, enter opens one, v changes the metric."""

    BINDINGS = [
        Binding("space", "select", "Select"),
        Binding("enter", "open", "Open"),
        Binding("v", "metric", "Metric"),
        Binding("g", "reload", "Reload"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.records: list[RunRecord] = []
        self.selected: set[str] = set()
        self.metric = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-hint", markup=False)
        yield Curves("", id="runs-chart", mono=bool(os.environ.get("NO_COLOR")))
        yield Footer()

    def on_mount(self) -> None:
        self.title = "dlc"
        self.sub_title = "runs"
        table = self.query_one(DataTable)
        table.add_columns(" ", "run", "lesson", "model", "knobs", "val acc", "status", "date")
        self.load()
        table.focus()
        self.set_interval(2.0, self._refresh_chart)

    def load(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self.records = sorted(list_runs(), key=lambda r: r.id, reverse=True)  # newest first
        for r in self.records:
            short = short_id(r)
            lesson, model, knobs, acc, _loss, status, date = run_row(r)
            table.add_row("●" if r.id in self.selected else " ", short, lesson, model, knobs, acc, status, date, key=r.id)
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
        chart.title = label
        n = len(self.selected)
        self.query_one("#runs-hint", Static).update(
            f"{len(self.records)} runs · {n} selected · chart: {label} (v: next metric)" if self.records
            else "no runs yet: open a lesson and press r")
        chart.refresh_if_needed()

    def _refresh_chart(self) -> None:
        self.query_one("#runs-chart", Curves).refresh_if_needed()

    def action_metric(self) -> None:
        self.metric = (self.metric + 1) % len(METRICS)
        self.show_chart()

    def action_reload(self) -> None:
        self.load()

    def action_open(self) -> None:
        r = self.current()
        if r is not None:
            self.app.push_screen(RunScreen(r))

    def action_back(self) -> None:
        self.app.pop_screen()


class RunScreen(Screen):
    """One past run: its loss and accuracy curves and its summary."""

    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, record: RunRecord) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        mono = bool(os.environ.get("NO_COLOR"))
        yield Header()
        yield Static("", id="run-summary", markup=False)
        with Horizontal(id="run-charts"):
            yield Curves("loss", id="run-loss", mono=mono)
            yield Curves("accuracy", id="run-acc", mono=mono)
        yield Footer()

    def on_mount(self) -> None:
        r = self.record
        self.title = "dlc"
        self.sub_title = r.id
        lesson, model, knobs, acc, loss, status, date = run_row(r)
        s = r.summary
        extra = f"\n{s['message']}" if s.get("message") else ""
        self.query_one("#run-summary", Static).update(
            f"{r.id}\n{lesson} · {model} · {knobs} · {status} · val acc {acc or '-'} · val loss {loss or '-'}{extra}\n{r.path}")
        m = r.metrics()
        loss_chart = self.query_one("#run-loss", Curves)
        acc_chart = self.query_one("#run-acc", Curves)
        loss_chart.set_series("train", *metric_series(m, "step", "loss"))
        loss_chart.set_series("val", *metric_series(m, "eval", "val_loss"))
        acc_chart.set_series("train", *metric_series(m, "step", "acc"))
        acc_chart.set_series("val", *metric_series(m, "eval", "val_acc"))

    def action_back(self) -> None:
        self.app.pop_screen()
