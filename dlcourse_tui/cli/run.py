"""`dlc run LESSON`: one experiment headless, with progress, a final table and exit codes
0 (done), 1 (the run failed), 2 (bad input), 130 (stopped by Ctrl+C, checkpoint saved)."""

from __future__ import annotations

import json
from contextlib import nullcontext
import signal
import threading
from pathlib import Path
from typing import Optional

from typing import TYPE_CHECKING

import typer

from dlcourse_tui.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console


def register(app: typer.Typer) -> None:
    app.command("run", no_args_is_help=True)(run_cmd)


def run_cmd(
    lesson: str = typer.Argument(..., help="Lesson id, slug or unique prefix, e.g. linear-classifier or linear."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="A model the lesson offers (see dlc models --lesson ID)."),
    variant: str = typer.Option("", "--variant", "-v", help="A named configuration of the lesson (see dlc lesson show ID)."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Change a knob: --set lr=0.05 (repeatable; dotted keys like train.lr work too)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Number of epochs (with --resume: continue up to this many)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda (or cuda:N) or mps."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed of data, initialisation and shuffling."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset: shapes, digits, blobs, moons, circles, spirals, xor, mnist, fashion-mnist, cifar10, imagefolder."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder of a real dataset (mnist, cifar10, imagefolder ...)."),
    download: bool = typer.Option(False, "--download", help="Fetch the real dataset into --data-dir if it is missing."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary on stdout at the end (progress goes to stderr)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue a stopped run (its id or a unique part of it)."),
) -> None:
    """Run a lesson's experiment headless: live progress, then a table of final metrics.

    Examples:  dlc run linear   ·   dlc run single-neuron --variant overfit   ·
    dlc run mlp --set hidden=8 --epochs 20   ·   dlc run linear --resume 20261126-1530
    """
    from dlcourse_tui.lessons import find_lesson

    les = find_lesson(lesson)
    record = None
    if resume:
        from dlcourse_tui.engine.config import RunConfig
        from dlcourse_tui.engine.runs import find_run

        record = find_run(resume)
        if record.config["lesson"] != les.id:
            raise UserError(f"run {record.id} belongs to lesson {record.config['lesson']}, not {les.id}: "
                            f"dlc run {record.config['lesson']} --resume {record.id}")
        changed = [name for name, v in (("--model", model), ("--variant", variant or None), ("--set", sets or None),
                   ("--device", device), ("--seed", seed), ("--data", data), ("--data-dir", data_dir)) if v]
        if changed:
            raise UserError(f"--resume continues run {record.id} exactly as it was; drop {', '.join(changed)} "
                            "(only --epochs may change) or start a new run.")
        config = RunConfig.from_dict(record.config)
    else:
        overrides = {"model.name": model, "train.epochs": epochs, "train.device": device, "train.seed": seed,
                     "data.name": data, "data.dir": str(data_dir) if data_dir else None, "data.download": download or None}
        clear: tuple[str, ...] = ()
        if data is not None:
            _check_data_name(data)
            from dlcourse_tui.data import REAL

            if data in REAL:  # the lesson's sizes are for its embedded data: take all, unless set here
                clear = ("data.n_train", "data.n_val")
        if model is not None and model not in les.models:
            from dlcourse_tui.models.registry import get_entry

            get_entry(model)  # unknown -> suggestion
            raise UserError(f"lesson {les.id} offers the models {', '.join(les.models)}, not {model!r}.")
        config = les.config(variant=variant, sets=sets, overrides=overrides, clear=clear)
    exit_code = run_headless(config, record=record, epochs=epochs if record else None, as_json=as_json)
    raise typer.Exit(exit_code)


def _check_data_name(name: str) -> None:
    from dlcourse_tui.data import DATASET_NAMES
    from dlcourse_tui.errors import suggest

    if name not in DATASET_NAMES:
        hint = suggest(name, DATASET_NAMES) or f" Datasets: {', '.join(DATASET_NAMES)}."
        raise UserError(f"--data {name}: no such dataset.{hint}")


def run_headless(config, *, record=None, epochs: int | None = None, as_json: bool = False) -> int:
    """Prepare, run with progress on the console and Ctrl+C as a graceful stop; the exit code."""
    from dlcourse_tui.cli.console import err, out
    from dlcourse_tui.cli.report import HeadlessReport
    from dlcourse_tui.engine.events import RunFailed
    from dlcourse_tui.engine.session import execute, prepare_run

    console = err if as_json else out
    with console.status("preparing data and model…") if console.is_terminal else nullcontext():
        prepared = prepare_run(config, resume=record, epochs=epochs)
    report = HeadlessReport(console)
    stop = threading.Event()

    def on_sigint(signum, frame):  # first Ctrl+C: stop after this step; second: give up
        if stop.is_set():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        stop.set()
        err.print("\nstopping after this step and saving a checkpoint (Ctrl+C again to abort)…")

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None
    try:
        store, final = execute(prepared, [report], stop_event=stop)
    finally:
        report.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    summary = {"run_id": store.id, "path": str(store.path), "lesson": config.lesson, "model": config.model,
               "data": config.data, **store.record.summary}
    if isinstance(final, RunFailed):
        console.print(f"[bold red]run failed:[/] {final.message}")
        console.print(f"  folder {store.path}")
        if as_json:
            print(json.dumps(summary, indent=2))
        return 1
    print_final(console, store, final, config)
    if as_json:
        print(json.dumps(summary, indent=2))
    if final.status == "stopped":
        console.print(f"Stopped at step {final.step} (epoch {final.epoch}); checkpoint saved.\n"
                      f"Resume with: dlc run {config.lesson} --resume {store.id}")
        return 130
    return 0


def print_final(console: "Console", store, final, config) -> None:
    """The final table: metrics, target, time, pictures and where the run lives."""
    from rich.table import Table

    from dlcourse_tui.lessons import find_lesson

    console.print(f"[bold]{config.lesson}[/] · {config.model} on {config.data} · {final.status}")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in final.metrics.items():
        table.add_row(k, f"{v * 100:.2f}%" if k.endswith("acc") else f"{v:.4f}")
    table.add_row("time", f"{final.elapsed:.1f} s")
    table.add_row("steps", str(final.step))
    console.print(table)
    target = find_lesson(config.lesson).target
    if target and target.value is not None and target.metric in final.metrics:
        ok = target.met(final.metrics)
        sign = "≥" if target.mode == "max" else "≤"
        console.print(f"target {target.metric} {sign} {target.value:g}: " + ("[green]reached[/]" if ok else "[yellow]not reached[/]"))
    for pic in store.record.pictures():
        console.print(f"picture {pic.stem}: {pic}", soft_wrap=True)
    console.print(f"See it all with: dlc runs show {store.id}")
