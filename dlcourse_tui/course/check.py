"""`dlc lesson check`: what an author of a lesson's walkthrough can get wrong, one sentence
each, naming the file, the line and the block: blocks that do not parse, ids used twice,
conditions naming knobs, models, variants or screens the lesson does not have, a
condition already true before the learner has done anything, a question whose choices
and answer disagree. With `run=True`, one tiny epoch of the lesson shows which metrics
and pictures it really makes, and conditions naming others are reported too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlcourse_tui.course.blocks import BlockError, Blocks
from dlcourse_tui.course.conditions import Condition, MetricIs, Picked, RunIs, Viewed
from dlcourse_tui.course.facts import AppFacts, Facts, lesson_defaults

if TYPE_CHECKING:
    from dlcourse_tui.lessons import Lesson


@dataclass(frozen=True)
class Report:
    """The result of checking one lesson."""

    lesson: str
    steps: int
    questions: int
    problems: tuple[str, ...]


def check_lesson(lesson: "Lesson", *, run: bool = False) -> Report:
    """Every problem of `lesson`'s steps and questions (none: it is ready to walk)."""
    from dlcourse_tui.course.walkthrough import lesson_blocks

    md = lesson.folder / "lesson.md"
    try:
        blocks = lesson_blocks(lesson)
    except BlockError as e:
        return Report(lesson.id, 0, 0, (str(e),))
    problems: list[str] = []
    fresh = fresh_facts(lesson)
    named = [(s.line, f"step {s.id!r}", "done", s.done) for s in blocks.steps]
    named += [(q.line, f"question {q.id!r}", f"observed.{c}", cond) for q in blocks.questions for c, cond in q.observed.items()]
    for line, what, key, cond in named:
        where = f"{md}:{line}: {what}: {key}"
        problems += [f"{where}: {p}" for p in _names(lesson, cond)]
        if key == "done" and cond.holds(fresh):
            problems.append(f"{where}: {cond.text!r} is already true when the lesson is opened, before the learner "
                            "has done anything.")
    for q in blocks.questions:
        for f in q.before:
            if f.kind == "model" and f.name not in lesson.models:
                problems.append(f"{md}:{q.line}: question {q.id!r}: before: the lesson has no model {f.name!r}.")
            if f.kind == "variant" and f.name not in lesson.variants:
                problems.append(f"{md}:{q.line}: question {q.id!r}: before: the lesson has no variant {f.name!r}.")
    problems += _check_needs(lesson)
    from dlcourse_tui.exercises.verify import exercise_problems

    problems += exercise_problems(lesson)  # each exercise: its starter fails, its reference passes
    if run and not problems:
        problems += _check_by_running(lesson, blocks)
    return Report(lesson.id, len(blocks.steps), len(blocks.questions), tuple(problems))


def _check_needs(lesson: "Lesson") -> list[str]:
    """Each [needs.NAME] names a lesson there is, with settings its config can hold."""
    from dlcourse_tui.engine.upstream import upstream_config
    from dlcourse_tui.errors import UserError

    toml = lesson.folder / "experiment.toml"
    out = []
    for need in lesson.needs:
        if need.lesson == lesson.id:
            out.append(f"{toml}: needs.{need.name}: a lesson cannot build on its own runs.")
            continue
        try:
            upstream_config(need)
        except UserError as e:
            out.append(f"{toml}: needs.{need.name}: {e}")
    return out


def fresh_facts(lesson: "Lesson") -> Facts:
    """A learner who has just opened the lesson in the app and done nothing: no runs, the
    browser seen, the picker at the lesson's defaults. A step done already then is no step."""
    defaults = lesson_defaults(lesson.experiment)
    app = AppFacts(opened=True, screens={"browser"}, model=lesson.default_model,
                   knobs={k: defaults[k] for k in lesson.knobs if k in defaults})
    return Facts(lesson.id, defaults, (), app)


def _names(lesson: "Lesson", cond: Condition) -> list[str]:
    """Problems with the models, variants and metrics a condition names."""
    out = []
    for c in cond.clauses:
        filters = c.filters if isinstance(c, RunIs) else ()
        pairs = [(c.kind, c.name)] if isinstance(c, Picked) else [(f.kind, f.name) for f in filters]
        for kind, name in pairs:
            if kind == "model" and name not in lesson.models:
                out.append(f"the lesson has no model {name!r} (it has {', '.join(lesson.models)}).")
            if kind == "variant" and name not in lesson.variants:
                have = ", ".join(lesson.variants) or "none"
                out.append(f"the lesson has no variant {name!r} (it has {have}).")
        if isinstance(c, MetricIs) and not (c.name == "gap" or c.name.startswith(("train_", "val_"))):
            out.append(f"metric {c.name!r}: a run's metrics are named train_… or val_… (or gap).")
    return out


def _check_by_running(lesson: "Lesson", blocks: Blocks) -> list[str]:
    """Run one tiny epoch of the lesson's default; report metrics and pictures that conditions
    name but the run does not make."""
    import tempfile
    from pathlib import Path

    from dlcourse_tui.engine.events import PictureReady
    from dlcourse_tui.engine.session import execute, prepare_run

    sizes = {}
    for key, n in (("data.n_train", 64), ("data.n_val", 16)):
        knob = lesson.knobs.get(key)
        sizes[key] = max(n, int(knob.min)) if knob is not None and knob.min is not None else n
    cfg = lesson.config(overrides={"train.epochs": 1, **sizes})
    pictures: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="dlc-check-") as tmp:
        root = Path(tmp) / "runs"
        _store, final = execute(prepare_run(cfg, store_root=root),
                                [lambda e: pictures.add(e.name) if isinstance(e, PictureReady) else None], store_root=root)
    metrics = set(getattr(final, "metrics", {})) | {"gap"}
    md = lesson.folder / "lesson.md"
    out = []
    conds = [(s.line, f"step {s.id!r}", s.done) for s in blocks.steps]
    conds += [(q.line, f"question {q.id!r}", c) for q in blocks.questions for c in q.observed.values()]
    for line, what, cond in conds:
        for c in cond.clauses:
            if isinstance(c, MetricIs) and c.name not in metrics:
                out.append(f"{md}:{line}: {what}: a run of this lesson reports no metric {c.name!r} "
                           f"(it reports {', '.join(sorted(metrics))}).")
            if isinstance(c, Viewed) and c.kind == "picture" and c.name not in pictures:
                out.append(f"{md}:{line}: {what}: a run of this lesson makes no picture {c.name!r} "
                           f"(it makes {', '.join(sorted(pictures)) or 'none'}).")
    return out
