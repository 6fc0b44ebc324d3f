"""The app's side of the walkthroughs: one Walkthrough per lesson, fed with what the learner
does (a lesson opened, a screen or picture viewed, a model or knob picked, a run ended),
and the panes that show them. Nothing here imports torch; checking a step reads the run
store's small JSON files, so it runs when something changed, not on every key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlcourse_tui.course.blocks import BlockError

if TYPE_CHECKING:
    from dlcourse_tui.course.walkthrough import Walkthrough
    from dlcourse_tui.lessons import Lesson


class Walks:
    """The walkthroughs the app has opened, by lesson id; `visible`: whether panes are shown."""

    def __init__(self) -> None:
        self._walks: dict[str, Walkthrough | None] = {}
        self.errors: dict[str, str] = {}  # lesson id -> why its blocks cannot be read
        self.visible = False

    def of(self, lesson: "Lesson") -> "Walkthrough | None":
        """The lesson's walkthrough (None when it has no steps or questions, or they are broken)."""
        if lesson.id not in self._walks:
            from dlcourse_tui.course.walkthrough import Walkthrough

            try:
                walk = Walkthrough(lesson)
            except BlockError as e:
                self.errors[lesson.id] = str(e)
                walk = None
            self._walks[lesson.id] = walk if walk is None or walk.steps or walk.blocks.questions else None
        return self._walks[lesson.id]

    def note(self, lesson: "Lesson", *, check: bool = True, **did: Any) -> list[str]:
        """Record what the learner did in `lesson` (Walkthrough.record's keywords); with
        `check`, tick its current step if that made it done. The ids that ticked."""
        walk = self.of(lesson)
        return walk.record(check=check, **did) if walk is not None else []
