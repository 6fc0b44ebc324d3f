"""`dlc run LESSON --grid`: every variant of a lesson in turn, as ordinary runs with the
same seed and data (an ablation), then one overlaid chart of validation accuracy and a
table: final train and validation accuracy, their gap, and epochs to the lesson's target."""

from __future__ import annotations

import json
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from rich.markup import escape

from dlcourse_tui.errors import UserError


@dataclass(frozen=True)
class Arm:
    """One finished arm of a grid: its variant, run id and the numbers the table shows."""

    variant: str
    run_id: str
    status: str
    epochs: list[int]
    val_acc: list[float]
    train_acc: float | None
    final_val_acc: float | None
    epochs_to_target: int | None
    elapsed: float

    @property
    def gap(self) -> float | None:
        if self.train_acc is None or self.final_val_acc is None:
            return None
        return self.train_acc - self.final_val_acc


def epochs_to_reach(epochs: list[int], values: list[float], target: float | None, mode: str = "max") -> int | None:
    """The first epoch whose value reaches `target` (≥ for max, ≤ for min), or None."""
    if target is None:
        return None
    for e, v in zip(epochs, values):
        if (v >= target) if mode == "max" else (v <= target):
            return e
    return None


def arm_of(variant: str, store, final, target) -> Arm:
    """Read one finished run back from its folder."""
    metrics = store.record.metrics()
    evals = [m for m in metrics if m.get("type") == "eval" and "val_acc" in m]
    epochs = [int(m["epoch"]) for m in evals]
    val = [float(m["val_acc"]) for m in evals]
    train_lines = [m for m in metrics if m.get("type") == "epoch" and "train_acc" in m]
    train_acc = float(train_lines[-1]["train_acc"]) if train_lines else None
    status = getattr(final, "status", "failed")
    value, mode = (target.value, target.mode) if target and target.metric == "val_acc" else (None, "max")
    return Arm(variant, store.id, status, epochs, val, train_acc, val[-1] if val else None,
               epochs_to_reach(epochs, val, value, mode), float(getattr(final, "elapsed", 0.0)))


def run_grid(lesson, *, sets: list[str], overrides: dict[str, Any], clear: tuple[str, ...] = (),
             as_json: bool = False) -> int:
    """Run each variant of `lesson` in turn; print the chart and the table. The exit code:
    0 all completed, 1 an arm failed, 128 + the signal when Ctrl+C, SIGTERM or SIGHUP stopped it
    (130, 143, 129: the grid ends there)."""
    from dlcourse_tui.cli.console import err, out
    from dlcourse_tui.cli.interrupt import stop_on_signals
    from dlcourse_tui.cli.report import HeadlessReport
    from dlcourse_tui.engine.events import RunFailed
    from dlcourse_tui.engine.session import execute, prepare_run

    variants = list(lesson.variants)
    if not variants:
        raise UserError(f"lesson {lesson.id} has no variants, so --grid has nothing to run; "
                        "run it plainly: dlc run " + lesson.id)
    configs = [lesson.config(variant=v, sets=sets, overrides=overrides, clear=clear) for v in variants]  # all checked first
    console = err if as_json else out
    console.print(f"[bold]{lesson.id}[/] grid: {len(variants)} runs, same seed ({configs[0].train.seed}) and data: "
                  + ", ".join(variants))
    stop = threading.Event()
    arms: list[Arm] = []
    code = 0
    with stop_on_signals(stop, "stopping this run after this step (its checkpoint is saved); the grid ends here…") as request:
        for n, (variant, config) in enumerate(zip(variants, configs), start=1):
            console.print(f"\n[bold]arm {n}/{len(variants)}: {variant}[/] · {lesson.variants[variant]}")
            with console.status("preparing data and model…") if console.is_terminal else nullcontext():
                prepared = prepare_run(config)
            report = HeadlessReport(console)
            try:
                store, final = execute(prepared, [report], stop_event=stop)
            finally:
                report.close()
            arms.append(arm_of(variant, store, final, lesson.target))
            if isinstance(final, RunFailed):
                console.print(f"[bold red]arm {variant} failed:[/] {escape(final.message)}", soft_wrap=True)
                code = 1
            elif final.status == "stopped":
                code = request.exit_code
                break
    print_grid(console, lesson, arms)
    if as_json:
        print(json.dumps({"lesson": lesson.id, "arms": [
            {"variant": a.variant, "run_id": a.run_id, "status": a.status, "train_acc": a.train_acc,
             "val_acc": a.final_val_acc, "gap": a.gap, "epochs_to_target": a.epochs_to_target,
             "elapsed": a.elapsed} for a in arms]}, indent=2))
    return code


def print_grid(console, lesson, arms: list[Arm]) -> None:
    """The overlaid chart of validation accuracy per arm, then the comparison table."""
    from rich.table import Table
    from rich.text import Text

    from dlcourse_tui.render.chart import line_chart

    if not arms:
        return
    target = lesson.target
    series = {a.variant: (a.epochs, a.val_acc) for a in arms if a.epochs}
    if series:
        chart = line_chart(series, width=min(console.width, 100), height=16, title="validation accuracy per arm",
                           xlabel="epoch", color=console.color_system is not None)
        console.print(Text.from_ansi(chart))  # plotext's colours as Rich styles: no escape cut by a wrap
    reach = f"epochs to {target.value * 100:g}%" if target and target.metric == "val_acc" and target.value else "epochs to target"
    table = Table(title=f"{lesson.id}: the ablation (same seed, same data)", title_justify="left")
    for col, right in (("arm", False), ("train acc", True), ("val acc", True), ("gap", True), (reach, True),
                       ("time", True)):
        table.add_column(col, justify="right" if right else "left", overflow="fold")

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v * 100:.1f}%"

    for a in arms:
        gap = "—" if a.gap is None else f"{a.gap * 100:+.1f}"
        reached = "not reached" if a.epochs_to_target is None else str(a.epochs_to_target)
        table.add_row(a.variant + ("" if a.status == "completed" else f" ({a.status})"), pct(a.train_acc),
                      pct(a.final_val_acc), gap, reached, f"{a.elapsed:.1f} s")
    console.print(table)
    total = sum(a.elapsed for a in arms)
    console.print(f"grid time: {total:.1f} s of training for {len(arms)} runs. "
                  "train acc is the last epoch's running mean over its batches (augmented, with dropout on), "
                  "gap = train − val in points.")
    if len(arms) > 1:
        console.print("side by side: dlc runs compare " + " ".join(a.run_id for a in arms), soft_wrap=True)
        console.print("one arm's curves and pictures: dlc runs show ID", soft_wrap=True)
