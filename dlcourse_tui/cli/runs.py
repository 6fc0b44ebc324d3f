"""`dlc runs list | show | compare`: past runs read back from the run store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape

if TYPE_CHECKING:
    from dlcourse_tui.engine.runs import RunRecord

app = typer.Typer(help="Past runs: list them, show one, compare several.", no_args_is_help=True)

STATUS_STYLE = {"completed": "green", "stopped": "yellow", "failed": "red", "running": "cyan", "interrupted": "magenta"}


def _final(record: "RunRecord") -> dict[str, float]:
    s = record.summary
    if "metrics" in s:
        return s["metrics"]
    last: dict[str, float] = {}
    for m in record.metrics():  # a run still going, or interrupted: its latest numbers
        if m.get("type") in ("epoch", "eval"):
            last.update({k: v for k, v in m.items() if k not in ("type", "step", "epoch", "time")})
    return last


def _fmt(key: str, value) -> str:
    if isinstance(value, float):
        return f"{value * 100:.1f}%" if key.endswith("acc") else f"{value:.4g}"
    return str(value)


@app.command("list")
def list_cmd(lesson: str = typer.Option(None, "--lesson", "-l", help="Only runs of this lesson.")) -> None:
    """Every run: id, data, status and its lesson's headline metric (dlc runs show ID for the rest)."""
    from rich import box
    from rich.table import Table

    from dlcourse_tui.cli.console import out
    from dlcourse_tui.engine.runs import list_runs, runs_root

    runs = list_runs()
    if lesson:
        runs = [r for r in runs if r.config.get("lesson", "").startswith(lesson)]
    if not runs:
        out.print(f"No runs yet in {runs_root()}. Start one with: dlc run linear-classifier")
        return
    table = Table(title=f"runs in {runs_root()}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id (date-time-lesson-model)", overflow="fold")
    table.add_column("data", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("result", justify="right", no_wrap=True)
    from dlcourse_tui.lessons import headline_chart
    from dlcourse_tui.render.text import metric_text

    for r in runs:
        cfg, final, status = r.config, _final(r), r.status
        chart = headline_chart(str(cfg.get("lesson", "")))  # the lesson's own metric: accuracy, coverage, ELBO
        value = final.get(chart.val)
        result = f"{chart.title} {metric_text(chart.val, value)}" if isinstance(value, (int, float)) else ""
        table.add_row(r.id, cfg["data"]["name"], f"[{STATUS_STYLE.get(status, '')}]{status}[/]", result)
    out.print(table)


@app.command("show")
def show_cmd(
    run_id: str = typer.Argument(..., metavar="ID", help="Run id or a unique part of it."),
    pictures: bool = typer.Option(True, "--pictures/--no-pictures", help="Draw the run's pictures in the terminal."),
) -> None:
    """One run: status, final metrics, curves, tables, pictures, and where its files are."""
    from rich.table import Table
    from rich.text import Text

    from dlcourse_tui.cli.console import out
    from dlcourse_tui.engine.runs import find_run, metric_series, steps_per_epoch
    from dlcourse_tui.render.text import fmt_metrics, table_of
    from dlcourse_tui.render.chart import line_chart
    from dlcourse_tui.render.halfblock import HalfBlockImage
    from dlcourse_tui.engine.config import flatten

    r = find_run(run_id)
    s, cfg = r.summary, r.config
    status = r.status
    out.print(f"[bold]{r.id}[/]  [{STATUS_STYLE.get(status, '')}]{status}[/]")
    out.print(f"lesson {cfg['lesson']} · model {cfg['model']['name']} · data {cfg['data']['name']}"
              + (f" · variant {cfg['variant']}" if cfg.get("variant") else "")
              + (f" · {s['num_params']:,} parameters" if "num_params" in s else "")
              + (f" · {s['elapsed']:.1f} s on {s.get('device', '?')}" if "elapsed" in s else ""))
    if s.get("message"):
        out.print(f"[red]{escape(s['message'])}[/]")
    final = _final(r)
    if final:
        out.print("final: " + fmt_metrics(final))
    metrics = r.metrics()
    width = min(out.width, 100)
    from dlcourse_tui.lessons import headline_chart

    from dlcourse_tui.course.diagnostics import diagnose
    from dlcourse_tui.course.reference import band_series, load_reference
    from dlcourse_tui.errors import UserError
    from dlcourse_tui.lessons import find_lesson

    metric = headline_chart(str(cfg.get("lesson", "")))  # the lesson's target metric, beside the loss
    try:
        lesson = find_lesson(str(cfg.get("lesson", "")))
    except UserError:
        lesson = None
    reference = load_reference(lesson.folder) if lesson is not None else None
    per_epoch = steps_per_epoch(metrics)
    for name, val_name in (("loss", "val_loss"), (metric.train, metric.val)):
        series = {}
        xs, ys = metric_series(metrics, "step", name)
        if xs:
            series[f"train {name}"] = (xs, ys)
        xs, ys = metric_series(metrics, "eval", val_name)
        if xs:
            series[f"val {name}"] = (xs, ys)
        if series:  # the expected band, at the steps its epochs end
            series.update(band_series(reference, val_name, per_epoch, cfg.get("train", {}).get("epochs")))
        if series:
            chart = line_chart(series, width=width, height=12, title=name, color=out.color_system is not None)
            out.print(Text.from_ansi(chart))  # plotext's colours as Rich styles: no escape cut by a wrap
    for d in diagnose(metrics, cfg, lesson, reference):
        out.print(f"[yellow]diagnosis:[/] {escape(d.text)}", soft_wrap=True)
    for t in r.tables():
        out.print(table_of(t["title"], t["columns"], t["rows"]))
    if pictures:
        for pic in r.pictures():
            from PIL import Image
            import numpy as np

            out.print(f"[bold]{pic.stem}[/]  {pic}")
            out.print(HalfBlockImage(np.asarray(Image.open(pic).convert("RGB")), width=min(out.width, 64)))
    config_table = Table(title="config", title_justify="left", show_header=False)
    for k, v in flatten(cfg).items():
        config_table.add_row(k, str(v))
    out.print(config_table)
    out.print(f"files: {r.path}")
    if status in ("stopped", "interrupted") and r.checkpoint.exists():
        out.print(f"resume: dlc run {cfg['lesson']} --resume {r.id}")


@app.command("compare")
def compare_cmd(run_ids: list[str] = typer.Argument(..., metavar="ID...", help="Two or more run ids (unique parts work).")) -> None:
    """Final metrics side by side, and the config keys that differ between the runs."""
    from rich.table import Table

    from dlcourse_tui.cli.console import out
    from dlcourse_tui.engine.runs import find_run
    from dlcourse_tui.engine.config import flatten
    from dlcourse_tui.errors import UserError

    if len(run_ids) < 2:
        raise UserError("compare needs at least two runs, e.g. dlc runs compare RUN_A RUN_B.")
    runs = [find_run(q) for q in run_ids]
    finals = [_final(r) for r in runs]
    table = Table(title="metrics", title_justify="left")
    table.add_column("")
    for r in runs:
        table.add_column(r.id, justify="right", overflow="fold")
    table.add_row("status", *[r.status for r in runs])
    for key in sorted({k for f in finals for k in f}):
        table.add_row(key, *[_fmt(key, f.get(key, "—")) for f in finals])
    table.add_row("params", *[f"{r.summary.get('num_params', 0):,}" for r in runs])
    table.add_row("time (s)", *[f"{r.summary.get('elapsed', 0):.1f}" for r in runs])
    out.print(table)
    flats = [flatten(r.config) for r in runs]
    keys = sorted({k for f in flats for k in f})
    differ = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
    if not differ:
        out.print("The runs have the same config.")
        return
    diff = Table(title="config keys that differ", title_justify="left")
    diff.add_column("key")
    for r in runs:
        diff.add_column(r.id, overflow="fold")
    for k in differ:
        diff.add_row(k, *[str(f.get(k, "—")) for f in flats])
    out.print(diff)
