"""`dlc run LESSON --predict`: the lesson's prediction questions for this run, asked on the
terminal before it starts and marked after it ends, against the answer and against what
the learner's own run showed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from dlcourse_tui.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from dlcourse_tui.course.walkthrough import Walkthrough


def ask_before(walk: "Walkthrough", config: dict, console: "Console", *, interactive: bool) -> int:
    """Ask the open questions tied to a run of `config`; how many were answered."""
    questions = walk.questions_before(config)
    if not questions:
        waiting = len(walk.pending())
        console.print("--predict: no open question for this run" + (f" ({waiting} answered, marked when their run ends)"
                                                                  if waiting else "") + f"; dlc tutorial {walk.lesson.id} lists them all.")
        return 0
    if not interactive:
        raise UserError("--predict asks its questions on a terminal, and this one has none attached; "
                        f"answer them with dlc tutorial {walk.lesson.id} --answer ID=VALUE instead.")
    answered = 0
    for q in questions:
        console.print(f"\n[bold]Predict:[/] {q.ask}", highlight=False)
        if q.choices:
            given = typer.prompt(f"  {' / '.join(q.choices)} (enter to skip)", default="", show_default=False).strip()
            while given and given not in q.choices:
                given = typer.prompt(f"  one of {', '.join(q.choices)} (enter to skip)", default="",
                                     show_default=False).strip()
        else:
            given = typer.prompt("  a number (enter to skip)", default="", show_default=False).strip()
            while given and not _is_number(given):
                given = typer.prompt("  a number, e.g. 0.5 (enter to skip)", default="", show_default=False).strip()
        if given:
            walk.answer(q, given)
            answered += 1
    if answered:
        console.print("Answers kept; they are marked when the run ends.\n")
    return answered


def mark_after(walk: "Walkthrough", run_id: str, console: "Console") -> None:
    """Reveal and mark the answers given for run `run_id`, and any others whose run has happened."""
    print_marks(walk.reveal_after(run_id) + walk.reveal_pending(), console)


def print_marks(marked, console: "Console") -> None:
    """Each question answered before a run: the verdict, the answer and why, and what the
    learner's own run showed."""
    for q, a in marked:
        verdict = "[green]right[/]" if a.right else "[red]not quite[/]"
        console.print(f"\n{q.ask}\n  you said {a.given!r}: {verdict}; the answer: {q.answer!r}. {q.explain}",
                      highlight=False)
        if a.observed is not None:
            agree = "as the answer says" if str(a.observed) == str(q.answer) else "not what the answer says: look closer"
            console.print(f"  your run showed: {a.observed} ({agree})", highlight=False)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
