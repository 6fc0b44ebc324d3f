"""`dlc tutorial LESSON`: the lesson's walkthrough, checked against the run store: each
step done, current or to do, what is still unmet, and the next thing to do as a command."""

from __future__ import annotations

import json
from typing import Optional

import typer

from dlcourse_tui.errors import UserError

MARKS = {"done": "✓", "current": "→", "todo": "·"}


def register(app: typer.Typer) -> None:
    app.command("tutorial", no_args_is_help=True)(tutorial_cmd)


def tutorial_cmd(
    lesson: str = typer.Argument(..., help="Lesson id, slug or unique prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print the walkthrough's state as JSON (for scripts)."),
    hint: bool = typer.Option(False, "--hint", help="Reveal the current step's next hint."),
    answer: Optional[list[str]] = typer.Option(None, "--answer", help="Answer a question: --answer ID=VALUE (repeatable)."),
    next_step: bool = typer.Option(False, "--next", help="Move on past the current step, done or not (a step done in the app, say)."),
    reset: bool = typer.Option(False, "--reset", help="Forget this lesson's walkthrough progress and answers (runs stay)."),
    yes: bool = typer.Option(False, "--yes", help="With --reset: do not ask for confirmation."),
) -> None:
    """Walk a lesson step by step from the terminal: steps tick as the run store shows them done.

    Steps that need the app (a screen or picture viewed) say so; progress is shared with the app's walkthrough pane (w), one small file per lesson in the data folder.
    """
    from dlcourse_tui.cli.console import out
    from dlcourse_tui.course.blocks import BlockError
    from dlcourse_tui.course.walkthrough import Walkthrough
    from dlcourse_tui.lessons import find_lesson

    les = find_lesson(lesson)
    try:
        walk = Walkthrough(les)
    except BlockError as e:
        raise UserError(f"the walkthrough of {les.id} cannot be read: {e}") from None
    if not walk.steps and not walk.blocks.questions:
        raise UserError(f"lesson {les.id} has no walkthrough yet: read it with dlc lesson show {les.id}")
    if reset:
        if not yes and not typer.confirm(f"Forget your progress and answers in {les.id}?", default=False, err=True):
            raise typer.Exit(1)
        walk.reset()
        out.print(f"{les.id}: walkthrough progress forgotten (your runs stay).")
    for item in answer or []:
        _answer(walk, item)
    if next_step:
        walk.next()
    ticked = walk.advance_while_done()
    marked = walk.reveal_pending()
    shown_hint = walk.hint() if hint else None
    if as_json:
        print(json.dumps(state_dict(walk), indent=2))
        return
    print_walkthrough(out, walk, ticked, shown_hint)
    from dlcourse_tui.cli.predict import print_marks

    print_marks(marked, out)


def _answer(walk, item: str) -> None:
    if "=" not in item:
        raise UserError(f"--answer {item}: write it as ID=VALUE, e.g. --answer {walk.blocks.questions[0].id}=…"
                        if walk.blocks.questions else f"--answer {item}: this lesson has no questions.")
    qid, value = (p.strip() for p in item.split("=", 1))
    questions = {q.id: q for q in walk.blocks.questions}
    if qid not in questions:
        raise UserError(f"--answer {qid}: no such question here; questions: {', '.join(questions) or 'none'}.")
    q = questions[qid]
    if q.choices and value not in q.choices:
        raise UserError(f"--answer {qid}={value}: choose one of {', '.join(q.choices)}.")
    if not q.choices:
        try:
            float(value)
        except ValueError:
            raise UserError(f"--answer {qid}={value}: the answer is a number.") from None
    walk.answer(q, value)


def state_dict(walk) -> dict:
    """The walkthrough as data: steps with state and unmet clauses, questions with answers."""
    views = walk.views()
    current = walk.current
    return {
        "lesson": walk.lesson.id,
        "finished": walk.finished,
        "current": current.id if current else None,
        "steps": [{"id": v.step.id, "number": v.number, "state": v.state, "do": v.step.do, "command": v.step.command,
                   "done_when": v.step.done.text, "unmet": list(v.unmet), "hints": list(v.hints_shown),
                   "needs_app": needs_app(v.step)} for v in views],
        "questions": [{"id": q.id, "ask": q.ask, "choices": list(q.choices), "before": q.before_text,
                       **_answer_state(walk, q)} for q in walk.blocks.questions],
    }


def _answer_state(walk, q) -> dict:
    a = walk.progress.answers.get(q.id)
    if a is None:
        return {"answered": False}
    state = {"answered": True, "given": a.given}
    if a.right is not None:  # revealed
        state.update(right=a.right, answer=q.answer, explain=q.explain, observed=a.observed)
    return state


def needs_app(step) -> bool:
    """Whether the step's condition asks about something only the app sees."""
    from dlcourse_tui.course.conditions import LessonOpened, Viewed

    return any(isinstance(c, (LessonOpened, Viewed)) for c in step.done.clauses)


def print_walkthrough(console, walk, ticked: list[str], hint: str | None) -> None:
    les = walk.lesson
    views = walk.views()
    console.print(f"[bold]{les.title}[/] — walkthrough ({sum(v.state == 'done' for v in views)}/{len(views)} steps done)")
    for v in views:
        mark = MARKS[v.state]
        new = " [green](just now)[/]" if v.step.id in ticked else ""
        console.print(f" {mark} {v.number}. {v.step.do}{new}", highlight=False)
        if v.state == "done" and v.step.notice and v.step.id in ticked:
            console.print(f"     [dim]notice:[/] {v.step.notice}", highlight=False)
    current = walk.current
    if current is None:
        if walk.steps:
            console.print("[green]All steps done.[/] Questions and what to try next are in the lesson text.")
    else:
        view = next(v for v in views if v.step.id == current.id)
        console.print(f"\n[bold]Now:[/] {current.do}", highlight=False)
        if view.unmet:
            console.print(f"  still to do: {'; '.join(view.unmet)}", highlight=False)
        if needs_app(current):
            console.print("  this step is done in the app: open it with [bold]dlc[/], then w for the walkthrough "
                          f"(or move on: dlc tutorial {les.id} --next)")
        if current.command:
            console.print(f"  run: [bold]{current.command}[/]", highlight=False, soft_wrap=True)
        for h in view.hints_shown:
            console.print(f"  hint: {h}", highlight=False)
        if len(view.hints_shown) < len(current.hints):
            console.print(f"  ({'another' if view.hints_shown else 'a'} hint: dlc tutorial {les.id} --hint)")
    open_questions = [q for q in walk.blocks.questions if q.id not in walk.progress.answers]
    if open_questions:
        console.print(f"\n{len(open_questions)} question(s) to predict: "
                      + ", ".join(q.id for q in open_questions)
                      + f" (answer with dlc tutorial {les.id} --answer ID=VALUE, or dlc run {les.id} --predict)")
