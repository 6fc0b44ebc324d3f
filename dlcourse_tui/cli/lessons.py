"""`dlc lessons` (the course map) and `dlc lesson show ID` (a lesson's text and experiment)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from dlcourse_tui.errors import UserError

if TYPE_CHECKING:
    from rich.panel import Panel

    from dlcourse_tui.lessons import Lesson

lesson_app = typer.Typer(help="Read one lesson.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("lessons", help="The course map: every lesson by chapter.")(list_lessons)
    app.add_typer(lesson_app, name="lesson")


CHAPTERS = {1: "Foundations", 2: "Convolutional networks", 3: "Generative models", 4: "Sequences and attention",
            5: "Vision and language"}


def list_lessons() -> None:
    """Print every lesson grouped by chapter."""
    from rich.table import Table

    from dlcourse_tui.cli.console import err, out
    from dlcourse_tui.lessons import REPORTED, broken_lessons, load_lessons

    table = Table(title="dlc — the course", title_justify="left")
    table.add_column("ch", justify="right")
    table.add_column("id", style="bold")
    table.add_column("title")
    table.add_column("data · model")
    chapter = None
    for lesson in load_lessons():
        if lesson.chapter != chapter:
            if chapter is not None:
                table.add_section()
            chapter = lesson.chapter
        table.add_row(str(lesson.chapter), lesson.id, lesson.title, f"{lesson.default_data} · {lesson.default_model}")
    broken = broken_lessons()
    if broken:
        table.add_section()
        for bad in broken:
            table.add_row("", bad.id or bad.folder.name, "[red]broken, skipped[/]", str(bad.folder))
    out.print(table)
    out.print("Read one with [bold]dlc lesson show ID[/]; run it with [bold]dlc run ID[/].")
    for bad in broken:  # the sentence on stderr, whole: the table cell would cut it
        err.print(f"broken lesson: {bad.message}", soft_wrap=True, markup=False, highlight=False)
        REPORTED.add(bad.folder)


@lesson_app.command("show")
def show(lesson_id: str = typer.Argument(..., metavar="ID", help="Lesson id, slug or a unique prefix (e.g. linear).")) -> None:
    """Print a lesson's text and its experiment: models, variants, knobs and target."""
    from rich.markdown import Markdown

    from dlcourse_tui.cli.console import out
    from dlcourse_tui.lessons import find_lesson

    lesson = find_lesson(lesson_id)
    # wrapped at the console's width even in a pipe (80 columns unless COLUMNS says): the
    # consoles' soft wrap, right for one-line log records, would crop list items there
    if out.is_terminal:
        out.print(Markdown(lesson.reading), soft_wrap=False)
    else:  # without the padding Rich adds to each line
        with out.capture() as captured:
            out.print(Markdown(lesson.reading), soft_wrap=False)
        out.file.write("\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n")
    out.print(experiment_panel(lesson))


@lesson_app.command("check")
def check(
    path: Optional[Path] = typer.Argument(None, help="A lesson folder, or a folder of them; default: every lesson dlc finds."),
    run: bool = typer.Option(False, "--run", help="Also run one tiny epoch of each lesson to check the metrics and pictures its conditions name."),
) -> None:
    """Check lessons' walkthrough steps and questions, for authors and CI: exit 0 if all are fine, 1 with one sentence per problem (file, line, block, fault)."""
    from dlcourse_tui.cli.console import err, out
    from dlcourse_tui.course.check import check_lesson
    from dlcourse_tui.lessons import LessonError, REPORTED, broken_lessons, load_lesson, load_lessons

    lessons, problems = [], []
    if path is None:
        lessons = load_lessons()
        for bad in broken_lessons():
            problems.append(bad.message)
            REPORTED.add(bad.folder)
    else:
        folders = [path] if (path / "lesson.md").is_file() else sorted(p for p in path.iterdir() if (p / "lesson.md").is_file()) \
            if path.is_dir() else []
        if not folders:
            raise UserError(f"{path}: no lesson here (a folder with lesson.md and experiment.toml, or a folder of them).")
        for folder in folders:
            try:
                lessons.append(load_lesson(folder))
            except LessonError as e:
                problems.append(str(e))
    for lesson in lessons:
        report = check_lesson(lesson, run=run)
        problems += report.problems
        status = "[green]ok[/]" if not report.problems else f"[red]{len(report.problems)} problem(s)[/]"
        out.print(f"{lesson.id}: {report.steps} steps, {report.questions} questions — {status}", highlight=False)
    for p in problems:
        err.print(p, soft_wrap=True, markup=False, highlight=False)
    if problems:
        raise typer.Exit(1)


def experiment_panel(lesson: "Lesson") -> "Panel":
    """The experiment summary: task, data, models, target, variants and knobs with ranges."""
    from rich.panel import Panel
    from rich.table import Table

    from dlcourse_tui.engine.config import flatten

    exp = lesson.experiment
    defaults = flatten({"train": exp.get("train", {}), "model": exp["model"], "data": exp.get("data", {}),
                        "task": exp.get("task_args", {})})
    grid = Table.grid(padding=(0, 2))
    grid.add_row("task", lesson.task)
    grid.add_row("data", lesson.default_data)
    grid.add_row("models", ", ".join(lesson.models) + f"  (default {lesson.default_model})")
    if lesson.target:
        t = lesson.target
        grid.add_row("target", f"{t.metric} {'≥' if t.mode == 'max' else '≤'} {t.value:g}" if t.value is not None else f"{t.metric} (reported)")
    for name, desc in lesson.variants.items():
        grid.add_row(f"--variant {name}", desc)
    knobs = Table(title="knobs (--set name=value)", title_justify="left", show_edge=False)
    for col in ("name", "default", "allowed", "what it does"):
        knobs.add_column(col)
    for key, knob in lesson.knobs.items():
        default = defaults.get(key)
        knobs.add_row(lesson.short_key(key), "auto" if default is None else str(default), knob.range_text(), knob.help)
    body = Table.grid()
    body.add_row(grid)
    body.add_row("")
    body.add_row(knobs)
    body.add_row("")
    body.add_row(f"Run it: [bold]dlc run {lesson.id}[/]")
    return Panel(body, title=f"experiment · {lesson.id}", title_align="left")
