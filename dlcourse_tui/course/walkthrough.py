"""One lesson walked step by step: which steps are done, the one the learner is on and
what of its condition is still unmet, hints one at a time, and the prediction questions
asked before a run and marked after it. The app's pane, `dlc tutorial`, `dlc run
--predict` and the tests all drive this one class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from dlcourse_tui.course.blocks import Blocks, Question, Step, parse_blocks
from dlcourse_tui.course.facts import Facts, RunFacts, default_variant, dotted, gather, lesson_defaults
from dlcourse_tui.course.progress import Answer, Progress, run_stamp

if TYPE_CHECKING:
    from dlcourse_tui.lessons import Lesson

State = Literal["done", "current", "todo"]


def lesson_blocks(lesson: "Lesson") -> Blocks:
    """The steps and questions of `lesson`; BlockError names the file, line and fault."""
    key = (str(lesson.folder), lesson.body)
    if key not in _BLOCKS:
        _BLOCKS[key] = parse_blocks(lesson.body, lesson.folder / "lesson.md", lambda k: resolve_knob(lesson, k),
                                    line0=lesson.body_line)
    return _BLOCKS[key]


_BLOCKS: dict[tuple[str, str], Blocks] = {}  # parsed once per lesson text


def resolve_knob(lesson: "Lesson", key: str) -> str:
    """The dotted setting a condition's knob name means in `lesson` (lr -> train.lr)."""
    from dlcourse_tui.course.conditions import ConditionError

    known = sorted(set(lesson_defaults(lesson.experiment)) | set(lesson.knobs))
    if key in known:
        return key
    matches = [k for k in known if k.rsplit(".", 1)[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConditionError(f"knob {key!r} is ambiguous here: write one of {', '.join(matches)}")
    raise ConditionError(f"lesson {lesson.id} has no setting {key!r}")


@dataclass(frozen=True)
class StepView:
    """A step as the learner sees it now."""

    step: Step
    number: int
    state: State
    unmet: tuple[str, ...]  # the clauses of its condition that do not hold yet
    hints_shown: tuple[str, ...]


class Walkthrough:
    """The walkthrough of one lesson, over its saved progress and the run store."""

    def __init__(self, lesson: "Lesson", progress: Progress | None = None) -> None:
        self.lesson = lesson
        self.blocks = lesson_blocks(lesson)
        self.progress = progress or Progress.load(lesson.id)

    # -- facts -----------------------------------------------------------------------------
    def facts(self) -> Facts:
        return gather(self.lesson.id, self.lesson.experiment, self.progress.app)

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.blocks.steps

    @property
    def finished(self) -> bool:
        return bool(self.steps) and all(s.id in self.progress.done for s in self.steps)

    @property
    def current(self) -> Step | None:
        p = self.progress.position
        return self.steps[p] if 0 <= p < len(self.steps) else None

    # -- what the learner does -------------------------------------------------------------
    def record(self, *, opened: bool = False, screen: str = "", picture: str = "", model: str = "",
               variant: str | None = None, knobs: dict[str, Any] | None = None, check: bool = True) -> list[str]:
        """Note something the learner did in the app (saved when it is new); then, with
        `check`, tick the current step if it is done. Returns the ids of steps that ticked."""
        app, changed = self.progress.app, False
        if opened and not app.opened:
            app.opened = changed = True
        for name, seen in ((screen, app.screens), (picture, app.pictures)):
            if name and name not in seen:
                seen.add(name)
                changed = True
        if model and model != app.model:
            app.model, changed = model, True
        if variant is not None and variant != app.variant:
            app.variant, changed = variant, True
        if knobs is not None and knobs != app.knobs:
            app.knobs, changed = dict(knobs), True
        ticked = self.check() if check else []
        if changed and not ticked:
            self.progress.save()
        return ticked

    def check(self, facts: Facts | None = None) -> list[str]:
        """Tick the current step if its condition holds now (saved); the ids that ticked."""
        step = self.current
        if step is None or step.id in self.progress.done:
            return []
        if step.done.holds(facts or self.facts()):
            self.progress.done.append(step.id)
            self.progress.save()
            return [step.id]
        return []

    def next(self) -> Step | None:
        """Move on to the next step (the learner's key); it ticks at once if already done."""
        if self.progress.position < len(self.steps):
            self.progress.position += 1
            self.progress.save()
            self.check()
        return self.current

    def back(self) -> Step | None:
        if self.progress.position > 0:
            self.progress.position -= 1
            self.progress.save()
        return self.current

    def advance_while_done(self) -> list[str]:
        """Headless: tick and move on through every step whose condition holds, in order."""
        ticked: list[str] = []
        facts = self.facts()
        while self.current is not None:
            ticked += self.check(facts)
            if self.current.id not in self.progress.done:
                break
            self.progress.position += 1
        self.progress.save()
        return ticked

    def hint(self) -> str | None:
        """Reveal the current step's next hint (None when all are shown)."""
        step = self.current
        if step is None:
            return None
        shown = self.progress.hints.get(step.id, 0)
        if shown >= len(step.hints):
            return None
        self.progress.hints[step.id] = shown + 1
        self.progress.save()
        return step.hints[shown]

    def reset(self) -> None:
        self.progress.reset()

    def views(self, facts: Facts | None = None) -> list[StepView]:
        facts = facts or self.facts()
        out = []
        for i, step in enumerate(self.steps):
            state: State = "done" if step.id in self.progress.done else ("current" if i == self.progress.position else "todo")
            if i == self.progress.position and step.id in self.progress.done:
                state = "done"
            unmet = tuple(step.done.unmet(facts)) if state != "done" else ()
            shown = step.hints[:self.progress.hints.get(step.id, 0)]
            out.append(StepView(step, i + 1, state, unmet, tuple(shown)))
        return out

    # -- predictions -----------------------------------------------------------------------
    def questions_before(self, config: dict[str, Any]) -> list[Question]:
        """The open prediction questions for a run of `config` (RunConfig.to_dict()): tied to
        runs it matches, and not answered yet."""
        variant = str(config.get("variant", "")) or default_variant(self.lesson.experiment)
        run = RunFacts("", self.lesson.id, "new", str(config.get("model", {}).get("name", "")), variant,
                       dotted(config), {})
        defaults = lesson_defaults(self.lesson.experiment)
        return [q for q in self.blocks.questions if q.before and q.id not in self.progress.answers
                and all(f.matches(run, defaults) for f in q.before)]

    def answer(self, question: Question, given: Any) -> Answer:
        """Keep the learner's answer. One asked before a run stays hidden until that run
        ends (reveal_after); one not tied to a run is marked at once."""
        a = Answer(given, at=run_stamp())
        if not question.before:
            a.right = question.is_right(given)
            facts = self.facts()
            a.observed = next((c for c, cond in question.observed.items() if cond.holds(facts)), None)
        self.progress.answers[question.id] = a
        self.progress.save()
        return a

    def reveal_after(self, run_id: str, only: str = "") -> list[tuple[Question, Answer]]:
        """After run `run_id` ended: mark the questions answered before it (or only question
        `only`), and say what the learner's own run showed where the question tells how."""
        facts = self.facts()
        run = next((r for r in facts.runs if r.id == run_id), None)
        out = []
        for q in self.blocks.questions:
            a = self.progress.answers.get(q.id)
            if a is None or a.right is not None or (a.run and a.run != run_id) or (only and q.id != only):
                continue
            if run is None or not all(f.matches(run, facts.defaults) for f in q.before):
                continue  # not the run it predicts
            a.run, a.right = run_id, q.is_right(a.given)
            a.observed = next((choice for choice, cond in q.observed.items() if cond.holds(facts)), None)
            out.append((q, a))
        if out:
            self.progress.save()
        return out

    def reveal_pending(self) -> list[tuple[Question, Answer]]:
        """Mark the answers whose run has happened: for each question answered before a run
        and not revealed yet, the first completed run it predicts, made after the answer (a
        later second: the same second is too close to tell)."""
        facts = self.facts()
        out = []
        for q in self.pending():
            a = self.progress.answers[q.id]
            run = next((r for r in facts.runs if r.status == "completed" and r.id[:15] > a.at
                        and all(f.matches(r, facts.defaults) for f in q.before)), None)
            if run is not None:
                out += self.reveal_after(run.id, only=q.id)
        return out

    def pending(self) -> list[Question]:
        """Questions answered before a run whose answers are not revealed yet."""
        return [q for q in self.blocks.questions if q.id in self.progress.answers
                and self.progress.answers[q.id].right is None]

