"""The walkthrough pane: a lesson's steps with ✓ / → / ·, the current step's instruction,
what of its condition is still unmet, the hints revealed so far, and its keys. One Static,
rebuilt only when the walkthrough changes (a step ticked, a hint, a key), 34 columns wide
so that it fits beside the lesson text or the charts at 80×24."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from dlcourse_tui.course.walkthrough import Walkthrough

MARKS = {"done": ("✓", "green"), "current": ("→", "bold yellow"), "todo": ("·", "dim")}
KEYS = "n next · h hint · c check · x reset"


def pane_text(walk: "Walkthrough | None", width: int, height: int = 0, *, error: str = "",
              just_ticked: tuple[str, ...] = ()) -> Text:
    """The pane's content for `walk` in `width` columns (and, given a height, the steps
    around the current one when all of them would not leave room for it)."""
    text = Text(no_wrap=False, overflow="fold")
    if walk is None:
        text.append("Walkthrough\n", style="bold")
        text.append(error or "This lesson has no walkthrough yet: read it, run it (r), turn its knobs (m).",
                    style="red" if error else "dim")
        return text
    views = walk.views()
    done = sum(v.state == "done" for v in views)
    text.append(f"Walkthrough {done}/{len(views)}\n", style="bold")
    shown = views
    if height and len(views) > max(3, height - 13):  # keep ~12 lines for the current step
        room = max(3, height - 13)
        at = min(max(0, walk.progress.position - room // 2), len(views) - room)
        shown = views[at:at + room]
    for v in shown:
        mark, style = MARKS[v.state]
        line = f"{mark} {v.number} {v.step.do}"
        if len(line) > width:
            line = line[:max(1, width - 1)] + "…"
        text.append(line + "\n", style=style if v.state != "current" else "bold")
    current = walk.current
    text.append("─" * max(1, width) + "\n", style="dim")
    if current is None:
        text.append("All steps done. ", style="green")
        unanswered = [q for q in walk.blocks.questions if q.id not in walk.progress.answers]
        text.append(f"{len(unanswered)} question(s) still to predict.\n" if unanswered else "\n")
    else:
        view = next(v for v in views if v.step.id == current.id)
        text.append(current.do + "\n")
        if view.state == "done":
            text.append("✓ done" + (" just now" if current.id in just_ticked else "") + ": n for the next step\n",
                        style="green")
            if current.notice:
                text.append(current.notice + "\n", style="italic")
        elif view.unmet:
            text.append("to do: " + "; ".join(view.unmet) + "\n", style="yellow")
        if current.command and view.state != "done":
            text.append(f"headless: {current.command}\n", style="dim")
        for i, hint in enumerate(view.hints_shown, start=1):
            text.append(f"hint {i}: {hint}\n", style="cyan")
        left = len(current.hints) - len(view.hints_shown)
        if left and view.state != "done":
            text.append(f"({left} hint{'s' * (left != 1)} left: h)\n", style="dim")
    text.append(KEYS, style="dim")
    return text


class WalkthroughPane(Static):
    """Shows one lesson's walkthrough; `show` rebuilds it."""

    DEFAULT_CSS = """
    WalkthroughPane { width: 34; height: 1fr; padding: 0 1; border-left: solid $primary-darken-2; display: none; }
    WalkthroughPane.shown { display: block; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.lesson_id = ""
        self.just_ticked: tuple[str, ...] = ()

    def show(self, walk: "Walkthrough | None", *, lesson_id: str, error: str = "",
             just_ticked: tuple[str, ...] = ()) -> None:
        self.lesson_id = lesson_id
        self.just_ticked = just_ticked or (self.just_ticked if lesson_id == self.lesson_id else ())
        width = max(10, self.content_size.width or 31)
        self.update(pane_text(walk, width, self.content_size.height, error=error, just_ticked=self.just_ticked))

    def on_resize(self) -> None:
        self.app.refresh_walk()  # laid out for the new size
