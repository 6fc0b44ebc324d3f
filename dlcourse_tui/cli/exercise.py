"""`dlc exercise list|start` and `dlc check NAME [--watch]`: write the function that matters,
have it graded in a subprocess with a time limit, then train with it (`dlc run LESSON --use NAME`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dlcourse_tui.errors import UserError

exercise_app = typer.Typer(help="Exercises: write the function that matters, check it, train with it.",
                           no_args_is_help=True)
WATCH_POLL_S = 0.5


def register(app: typer.Typer) -> None:
    app.add_typer(exercise_app, name="exercise")
    app.command("check", no_args_is_help=True)(check_cmd)


@exercise_app.command("list")
def list_cmd() -> None:
    """Every exercise by lesson, with its state: not started, failing or passing."""
    from rich.table import Table

    from dlcourse_tui.cli.console import out
    from dlcourse_tui.exercises.registry import all_exercises
    from dlcourse_tui.exercises.workspace import state

    table = Table(title="dlc — exercises", title_justify="left")
    for col in ("lesson", "exercise", "what you write", "state"):
        table.add_column(col, style="bold" if col == "exercise" else None)
    colours = {"passing": "green", "failing": "red", "changed since the check": "yellow"}
    lesson = None
    for ex in all_exercises():
        if lesson is not None and ex.lesson != lesson:
            table.add_section()
        st = state(ex)
        table.add_row(ex.lesson if ex.lesson != lesson else "", ex.name, ex.title,
                      f"[{colours[st]}]{st}[/]" if st in colours else st)
        lesson = ex.lesson
    out.print(table)
    out.print("Start one with [bold]dlc exercise start NAME[/]; grade it with [bold]dlc check NAME[/].")


@exercise_app.command("start")
def start_cmd(name: str = typer.Argument(..., help="The exercise, e.g. softmax_ce (see dlc exercise list)."),
              force: bool = typer.Option(False, "--force", help="Replace your file with a fresh starter.")) -> None:
    """Copy an exercise's starter into your workspace in the data folder and print its path and the task."""
    from dlcourse_tui.cli.console import out
    from dlcourse_tui.exercises.registry import find_exercise
    from dlcourse_tui.exercises.workspace import start

    ex = find_exercise(name)
    path, written = start(ex, force=force)
    out.print(f"[bold]{ex.name}[/] · lesson {ex.lesson} · {ex.title}", highlight=False)
    out.print(ex.task, markup=False, highlight=False)
    if written:
        out.print(f"Your file: {path}", soft_wrap=True, highlight=False)
    else:
        out.print(f"Your file (kept as it was; --force starts over): {path}", soft_wrap=True, highlight=False)
    out.print(f"Write the parts that raise NotImplementedError, then: dlc check {ex.name}", highlight=False)


def check_cmd(
    name: str = typer.Argument(..., help="The exercise to check, e.g. softmax_ce (see dlc exercise list)."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Check again each time the file is saved (Ctrl+C ends)."),
    file: Optional[Path] = typer.Option(None, "--file", help="Check this file instead of your workspace's."),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Seconds the checks may run (default: the exercise's)."),
) -> None:
    """Grade your solution of an exercise: shapes, values, gradient checks, hidden checks; exit 0 when all pass, 1 if not.

    Examples:  dlc check softmax_ce   ·   dlc check batch_norm --watch
    """
    from dlcourse_tui.exercises.registry import find_exercise
    from dlcourse_tui.exercises.workspace import learner_file

    ex = find_exercise(name)
    if time_limit is not None and time_limit <= 0:
        raise UserError(f"--time-limit {time_limit:g}: give a positive number of seconds, e.g. --time-limit 10.")
    path = (file.expanduser() if file else learner_file(ex)).resolve()
    if not path.is_file():
        hint = f"start it with: dlc exercise start {ex.name}" if file is None else "give the path of your file."
        raise UserError(f"{path} does not exist: {hint}")
    if watch:
        watch_file(ex, path, time_limit)
        return
    try:
        ok = check_once(ex, path, time_limit)
    except KeyboardInterrupt:  # the worker is killed with it
        raise typer.Exit(130) from None
    raise typer.Exit(0 if ok else 1)


def check_once(ex, path: Path, time_limit: float | None) -> bool:  # noqa: ANN001 - an Exercise
    """Run the checks once, print the report, keep the result; whether all passed."""
    from rich.text import Text

    from dlcourse_tui.cli.console import out
    from dlcourse_tui.exercises.messages import outcome_lines
    from dlcourse_tui.exercises.runner import run_checks
    from dlcourse_tui.exercises.workspace import save_result

    outcome = run_checks(ex, path, time_limit=time_limit)
    save_result(ex, path, outcome)
    lines = outcome_lines(ex, path, outcome)
    out.print(Text(lines[0], style="bold green" if outcome.ok else "bold red"), soft_wrap=True)
    for line in lines[1:]:
        out.print(Text(line), soft_wrap=True)
    return outcome.ok


def watch_file(ex, path: Path, time_limit: float | None) -> None:  # noqa: ANN001 - an Exercise
    """Check now, then again after every save, until Ctrl+C."""
    import time

    from dlcourse_tui.cli.console import out

    def stamp() -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    seen = stamp()
    check_once(ex, path, time_limit)
    out.print(f"watching {path} — save it to check again, Ctrl+C to stop", soft_wrap=True, highlight=False)
    try:
        while True:
            time.sleep(WATCH_POLL_S)
            now = stamp()
            if now is not None and now != seen:
                seen = now
                out.rule(time.strftime("%H:%M:%S"))
                check_once(ex, path, time_limit)
    except KeyboardInterrupt:
        out.print("stopped watching.")
