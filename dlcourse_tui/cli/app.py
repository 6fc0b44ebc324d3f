"""The root `dlc` command: registers each command group and turns UserError into exit 2."""

from __future__ import annotations

import sys

import typer

from dlcourse_tui import __version__
from dlcourse_tui.cli import doctor, exercise, lessons, models, run, runs, serve, tutorial
from dlcourse_tui.errors import UserError

app = typer.Typer(
    name="dlc",
    help="Learn deep learning for computer vision by doing: read a lesson, run its experiment, watch it train.\n\n"
    "Start with:  dlc   (the app)   or   dlc lessons   then   dlc run linear-classifier",
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
lessons.register(app)
models.register(app)
run.register(app)
app.add_typer(runs.app, name="runs")
tutorial.register(app)
exercise.register(app)
doctor.register(app)
serve.register(app)


def _version(value: bool) -> None:
    if value:
        print(f"dlc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(ctx: typer.Context,
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit.")) -> None:
    """dlc: deep learning for computer vision, in the terminal. Without a command it opens the app."""
    if ctx.invoked_subcommand is None:
        tui_cmd()


def tui_cmd() -> None:
    """Open the app: lessons, model picker, live training dashboard, past runs (keys: ? for help)."""
    from dlcourse_tui.tui import run_app

    run_app()


app.command("tui")(tui_cmd)


def main() -> None:
    """Entry point of the `dlc` script: a UserError becomes one line on stderr and exit 2;
    Typer itself handles --help, usage errors (exit 2) and each command's exit code."""
    lessons = sys.modules.get("dlcourse_tui.lessons")
    if lessons is not None:  # a new command (several run in one test process)
        lessons.REPORTED.clear()
    try:
        app()
    except UserError as e:
        print(f"dlc: {e}", file=sys.stderr)
        sys.exit(2)
    finally:
        warn_broken_lessons()


def warn_broken_lessons() -> None:
    """One line on stderr per broken lesson the command skipped and did not already name."""
    lessons = sys.modules.get("dlcourse_tui.lessons")
    if lessons is None or not lessons.lessons_loaded():  # this command never read the lessons
        return
    for bad in lessons.broken_lessons():
        if bad.folder not in lessons.REPORTED:
            print(f"dlc: warning: skipped a broken lesson: {bad.message}", file=sys.stderr)
