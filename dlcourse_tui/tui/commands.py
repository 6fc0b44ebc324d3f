"""The command palette (ctrl+p): find lessons, models and past runs by name and open them.

A lesson opens in the browser, a model opens the picker of a lesson that offers it, a run
shows its curves on the runs screen. Reads lesson files and the run store only (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class Entry:
    """One thing the palette can open: the text matched, a help line, and what opening does."""

    text: str
    help: str
    open: Callable[[], object]


def course_entries(app) -> list[Entry]:
    """Lessons, then models (one entry per lesson offering it), then runs, newest first."""
    from dlcourse_tui.engine.runs import list_runs
    from dlcourse_tui.lessons import load_lessons

    entries: list[Entry] = []
    lessons = load_lessons()
    for lesson in lessons:
        entries.append(Entry(f"lesson {lesson.title}", f"{lesson.id} · chapter {lesson.chapter} · open in the browser",
                             partial(app.open_lesson, lesson.id)))
    for lesson in lessons:
        for model in lesson.models:
            star = " (default)" if model == lesson.default_model else ""
            entries.append(Entry(f"model {model} · {lesson.id}", f"pick {model}{star} and its knobs in {lesson.title}",
                                 partial(app.open_model, lesson.id, model)))
    from dlcourse_tui.tui.screens.runs import run_row

    for record in sorted(list_runs(), key=lambda r: r.id, reverse=True):
        lesson, model, knobs, acc, _loss, status, date = run_row(record)
        extra = f" · val acc {acc}" if acc else ""
        entries.append(Entry(f"run {record.id}", f"{status} · {knobs}{extra} · show its curves",
                             partial(app.open_run, record.id)))
    return entries


class CourseCommands(Provider):
    """Lessons, models and runs by name."""

    async def startup(self) -> None:
        self.entries = course_entries(self.app)  # lesson files (cached) and a few small JSON files

    async def discover(self) -> Hits:
        for entry in self.entries:
            if entry.text.startswith("lesson "):
                yield DiscoveryHit(entry.text, entry.open, help=entry.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in self.entries:
            score = matcher.match(entry.text)
            if score > 0:
                yield Hit(score, matcher.highlight(entry.text), entry.open, text=entry.text, help=entry.help)
