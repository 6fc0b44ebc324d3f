"""Load and validate the lessons: lessons/NN-slug/lesson.md + experiment.toml.

Built-in lessons come from the `lessons/` folder beside the package (an editable
checkout) or inside it (a built wheel); `DLC_LESSONS` may name extra folders
(os.pathsep-separated) of a teacher's own lessons in the same format.
Nothing here imports torch.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from dlcourse_tui.engine.config import Knob, TrainConfig, build_config, flatten, type_of, RunConfig
from dlcourse_tui.engine.upstream import Need, parse_needs
from dlcourse_tui.errors import UserError, suggest
from dlcourse_tui.models.catalog import MODELS, model_task
from dlcourse_tui.tasks import TASK_NAMES

_EXPERIMENT_KEYS = {"task", "models", "target", "train", "model", "data", "task_args", "knobs", "variants", "description",
                    "needs"}
_KNOB_KEYS = {"type", "help", "min", "max", "choices", "log"}


class LessonError(UserError):
    """A lesson folder that does not follow the format; names the file and the key."""


@dataclass(frozen=True)
class Target:
    """The metric a lesson's experiment aims for."""

    metric: str
    value: float | None = None
    mode: str = "max"  # "max": higher is better; "min": lower is better

    def met(self, metrics: dict[str, float]) -> bool | None:
        """Whether metrics reach the target; None when there is no value or metric."""
        if self.value is None or self.metric not in metrics:
            return None
        got = metrics[self.metric]
        return got >= self.value if self.mode == "max" else got <= self.value


@dataclass(frozen=True)
class MetricChart:
    """The chart of a lesson's headline metric: its title, and the keys of its training
    (per step) and validation (per evaluation) series."""

    title: str
    train: str
    val: str


ACCURACY_CHART = MetricChart("accuracy", "acc", "val_acc")


def headline_chart(lesson_id: str) -> MetricChart:
    """The chart of the lesson's target metric beside the loss: accuracy for a classifier,
    the class coverage of a GAN, the ELBO of a VAE, ... (accuracy for an unknown lesson)."""
    try:
        target = find_lesson(lesson_id).target
    except UserError:
        return ACCURACY_CHART
    if target is None or target.metric == ACCURACY_CHART.val:
        return ACCURACY_CHART
    name = target.metric.removeprefix("val_")
    return MetricChart(name.replace("_", " "), name, target.metric)


@dataclass(frozen=True)
class Lesson:
    """One lesson: its text and its experiment."""

    id: str
    title: str
    chapter: int
    order: int
    folder: Path
    body: str = field(repr=False)
    experiment: dict[str, Any] = field(repr=False)
    knobs: dict[str, Knob] = field(repr=False)
    summary: str = ""
    body_line: int = 0  # lines of lesson.md before the body (the front matter), for messages

    @property
    def slug(self) -> str:
        return self.folder.name

    @property
    def task(self) -> str:
        return self.experiment["task"]

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.experiment.get("models", [self.experiment["model"]["name"]]))

    @property
    def default_model(self) -> str:
        return self.experiment["model"]["name"]

    @property
    def default_data(self) -> str:
        return self.experiment.get("data", {}).get("name", "shapes")

    @property
    def variants(self) -> dict[str, str]:
        """Variant name to its one-line description."""
        return {k: v.get("description", "") for k, v in self.experiment.get("variants", {}).items()}

    @property
    def needs(self) -> list[Need]:
        """The models of other lessons' runs this lesson builds on ([needs.NAME] tables)."""
        return parse_needs(self.experiment, str(self.folder / "experiment.toml"))

    @property
    def target(self) -> Target | None:
        t = self.experiment.get("target")
        return Target(t["metric"], t.get("value"), t.get("mode", "max")) if t else None

    @property
    def reading(self) -> str:
        """The text to read: the body with its walkthrough blocks as short paragraphs (the
        raw body when they do not parse; `dlc lesson check` says why)."""
        from dlcourse_tui.course.blocks import BlockError
        from dlcourse_tui.course.walkthrough import lesson_blocks

        try:
            return lesson_blocks(self).reading
        except BlockError:
            return self.body

    def short_key(self, key: str) -> str:
        """The shortest name --set accepts for `key`: its leaf when unique, else the dotted key."""
        exp = self.experiment
        known = set(flatten({"train": exp.get("train", {}), "model": exp["model"], "data": exp.get("data", {}),
                             "task": exp.get("task_args", {})})) | set(self.knobs)
        known |= {f"train.{f}" for f in TrainConfig.__dataclass_fields__}
        leaf = key.rsplit(".", 1)[-1]
        return leaf if sum(k.rsplit(".", 1)[-1] == leaf for k in known) == 1 else key

    def config(self, *, variant: str = "", sets: list[str] | tuple[str, ...] = (), overrides: dict[str, Any] | None = None,
               clear: tuple[str, ...] = ()) -> RunConfig:
        """This lesson's RunConfig with a variant and overrides applied and checked."""
        return build_config(self.id, self.experiment, self.knobs, variant=variant, sets=sets, overrides=overrides,
                            clear=clear)


def builtin_lessons_dir() -> Path:
    """lessons/ inside the installed package (wheel) or beside it (checkout)."""
    here = Path(__file__).resolve().parent
    inside = here / "lessons"
    return inside if inside.is_dir() else here.parent / "lessons"


def lesson_dirs() -> list[Path]:
    """The built-in folder, then any DLC_LESSONS folders."""
    dirs = [builtin_lessons_dir()]
    extra = os.environ.get("DLC_LESSONS", "")
    dirs += [Path(p).expanduser() for p in extra.split(os.pathsep) if p.strip()]
    return dirs


@dataclass(frozen=True)
class BrokenLesson:
    """A lesson folder that could not be loaded, and why (a LessonError's sentence)."""

    folder: Path
    message: str
    id: str = ""  # its front matter's id, when that much could be read


REPORTED: set[Path] = set()  # broken lesson folders a front end has already told the user about


def load_lessons() -> list[Lesson]:
    """Every lesson that loads, sorted by chapter and order; broken ones are skipped
    (broken_lessons() says which, and why)."""
    return list(_load_all(tuple(lesson_dirs()))[0])


def lessons_loaded() -> bool:
    """Whether this process has read the lesson folders yet."""
    return _load_all.cache_info().currsize > 0


def broken_lessons() -> list[BrokenLesson]:
    """The lesson folders skipped by load_lessons(), each with the sentence naming its fault."""
    return list(_load_all(tuple(lesson_dirs()))[1])


@lru_cache(maxsize=4)
def _load_all(dirs: tuple[Path, ...]) -> tuple[tuple[Lesson, ...], tuple[BrokenLesson, ...]]:
    lessons: dict[str, Lesson] = {}
    broken: list[BrokenLesson] = []
    for root in dirs:
        if not root.is_dir():
            if root != dirs[0]:
                broken.append(BrokenLesson(root, f"DLC_LESSONS names {root}, which is not a folder."))
            continue
        for folder in sorted(p for p in root.iterdir() if (p / "lesson.md").is_file()):
            try:
                lesson = load_lesson(folder)
                if lesson.id in lessons:
                    raise LessonError(f"{folder / 'lesson.md'}: id {lesson.id!r} is already used by {lessons[lesson.id].folder}.")
            except LessonError as e:
                broken.append(BrokenLesson(folder, str(e), _front_matter_id(folder)))
                continue
            lessons[lesson.id] = lesson
    return tuple(sorted(lessons.values(), key=lambda l: (l.chapter, l.order, l.id))), tuple(broken)


def _front_matter_id(folder: Path) -> str:
    """The id a broken lesson's front matter gives, or '' (to answer `dlc lesson show ID`)."""
    try:
        meta, _ = parse_front_matter(read_text(folder / "lesson.md"), folder / "lesson.md")
    except LessonError:
        return ""
    return meta.get("id", "")


def read_text(path: Path) -> str:
    """A lesson file's text: UTF-8, a leading byte-order mark dropped; LessonError otherwise."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = e.object[:e.start].count(b"\n") + 1
        raise LessonError(f"{path}:{line}: not UTF-8 text (a byte {e.object[e.start]:#04x}); "
                          "save the file as UTF-8.") from None
    except OSError as e:
        raise LessonError(f"{path}: cannot be read ({e.strerror}).") from None


_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


def parse_front_matter(text: str, path: Path) -> tuple[dict[str, str], str]:
    """Split `---` key: value lines from the Markdown body."""
    m = _FRONT.match(text)
    if not m:
        raise LessonError(f"{path}: missing front matter (a '---' block with id, title, chapter, order).")
    meta: dict[str, str] = {}
    for n, line in enumerate(m.group(1).splitlines(), start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if ":" not in line:
            raise LessonError(f"{path}:{n}: front matter line {line!r} is not 'key: value'.")
        key, value = line.split(":", 1)
        meta[key.strip()] = value.strip().strip('"').strip("'")
    return meta, text[m.end():]


def load_lesson(folder: Path) -> Lesson:
    """One lesson folder, validated; LessonError names the file and the key at fault."""
    md = folder / "lesson.md"
    text = read_text(md)
    meta, body = parse_front_matter(text, md)
    for key in ("id", "title", "chapter", "order"):
        if key not in meta:
            raise LessonError(f"{md}: front matter lacks {key!r}.")
    try:
        chapter, order = int(meta["chapter"]), int(meta["order"])
    except ValueError:
        raise LessonError(f"{md}: chapter and order must be whole numbers (got {meta['chapter']!r}, {meta['order']!r}).") from None
    toml_path = folder / "experiment.toml"
    if not toml_path.is_file():
        raise LessonError(f"{folder}: experiment.toml is missing.")
    try:
        experiment = tomllib.loads(read_text(toml_path))
    except tomllib.TOMLDecodeError as e:
        raise LessonError(f"{toml_path}: not valid TOML ({e}).") from None
    knobs = validate_experiment(experiment, toml_path)
    lesson = Lesson(
        id=meta["id"], title=meta["title"], chapter=chapter, order=order, folder=folder,
        body=body, experiment=experiment, knobs=knobs, summary=meta.get("summary", ""),
        body_line=text.count("\n") - body.count("\n"),
    )
    try:
        lesson.config()
        for variant in lesson.variants:
            lesson.config(variant=variant)
    except UserError as e:
        raise LessonError(f"{toml_path}: {e}") from None
    return lesson


def validate_experiment(exp: dict[str, Any], path: Path) -> dict[str, Knob]:
    """Check an experiment.toml's structure; return its knobs by dotted key."""
    def bad(key: str, why: str) -> LessonError:
        return LessonError(f"{path}: {key}: {why}")

    for key in exp:
        if key not in _EXPERIMENT_KEYS:
            hint = suggest(key, _EXPERIMENT_KEYS) or f" Allowed: {', '.join(sorted(_EXPERIMENT_KEYS))}."
            raise bad(key, f"unknown key.{hint}")
    if exp.get("task") not in TASK_NAMES:
        raise bad("task", f"must be one of {', '.join(TASK_NAMES)} (got {exp.get('task')!r}).")
    for table in ("train", "model", "data", "task_args", "knobs", "variants"):
        if table in exp and not isinstance(exp[table], dict):
            raise bad(table, "must be a table, e.g. [" + table + "].")
    if not isinstance(exp.get("model", {}).get("name"), str):
        raise bad("model.name", "missing: name the default model, e.g. [model] name = \"linear\".")
    models = exp.get("models", [exp["model"]["name"]])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise bad("models", "must be a list of model names.")
    if exp["model"]["name"] not in models:
        raise bad("model.name", f"{exp['model']['name']!r} is not in models = {models}.")
    for name in models:
        task = model_task(name)
        if task is None:
            raise bad("models", f"no model {name!r}.{suggest(name, MODELS) or ' See them with: dlc models'}")
        if task != exp["task"]:
            raise bad("models", f"{name!r} is a {task} model, but this lesson's task is {exp['task']}.")
    train_fields = set(TrainConfig.__dataclass_fields__)
    for key, value in exp.get("train", {}).items():
        if key not in train_fields:
            raise bad(f"train.{key}", f"unknown trainer setting.{suggest(key, train_fields)}")
        want = type_of(getattr(TrainConfig, key))
        if type_of(value) != want and not (want == "float" and type_of(value) == "int"):
            raise bad(f"train.{key}", f"expected {want}, got {value!r}.")
    target = exp.get("target")
    if target is not None and (not isinstance(target, dict) or "metric" not in target):
        raise bad("target", "must be a table with at least metric = \"...\".")
    known = flatten({"train": exp.get("train", {}), "model": exp["model"], "data": exp.get("data", {}), "task": exp.get("task_args", {})})
    for f in train_fields:
        known.setdefault(f"train.{f}", getattr(TrainConfig, f))
    knobs: dict[str, Knob] = {}
    for key, spec in exp.get("knobs", {}).items():
        where = f"knobs.{key!r}"
        if key not in known and key.split(".", 1)[0] not in ("model", "data", "task"):
            raise bad(where, f"no such setting in [train], [model], [data] or [task_args].{suggest(key, known)}")
        if not isinstance(spec, dict):
            raise bad(where, "must be a table such as { type = \"float\", min = 0, max = 1 }.")
        for k in spec:
            if k not in _KNOB_KEYS:
                raise bad(f"{where}.{k}", f"unknown knob field; allowed: {', '.join(sorted(_KNOB_KEYS))}.")
        lo, hi = spec.get("min"), spec.get("max")
        if lo is not None and hi is not None and lo > hi:
            raise bad(where, f"min = {lo} is greater than max = {hi}; swap them.")
        kind = spec.get("type") or type_of(known[key])
        if kind not in ("int", "float", "bool", "str", "ints"):
            raise bad(f"{where}.type", f"must be int, float, bool, str or ints (a list of integers; got {kind!r}).")
        if key not in known and "type" not in spec:
            raise bad(f"{where}.type", "needed when the setting has no default in the file.")
        knobs[key] = Knob(
            key=key, type=kind, help=str(spec.get("help", "")), min=spec.get("min"), max=spec.get("max"),
            choices=tuple(spec.get("choices", ())), log=bool(spec.get("log", False)),
        )
        try:
            if key in known:  # a knob without a default leaves the choice to the model or dataset
                knobs[key].parse(known[key])
        except UserError as e:
            raise bad(where, f"the default does not fit the knob: {e}") from None
    try:
        parse_needs(exp, str(path))
    except UserError as e:
        raise LessonError(str(e)) from None
    for name, body in exp.get("variants", {}).items():
        if not isinstance(body, dict):
            raise bad(f"variants.{name}", "must be a table of settings.")
        for key in flatten({k: v for k, v in body.items() if k != "description"}):
            if key not in known and key not in knobs:
                raise bad(f"variants.{name}.{key}", f"no such setting.{suggest(key, known)}")
    return knobs


def find_lesson(query: str, lessons: list[Lesson] | None = None) -> Lesson:
    """The lesson whose id, slug or a unique prefix of either is `query`; UserError otherwise."""
    given = lessons is not None
    lessons = load_lessons() if lessons is None else lessons
    q = query.strip().lower()
    for lesson in lessons:
        if q in (lesson.id, lesson.slug):
            return lesson
    for bad in ([] if given else broken_lessons()):
        if q in (bad.id.lower(), bad.folder.name.lower()):
            REPORTED.add(bad.folder)
            raise LessonError(f"lesson {query!r} is broken and was skipped: {bad.message}")
    hits = [l for l in lessons if l.id.startswith(q) or l.slug.startswith(q) or l.slug.split("-", 1)[-1].startswith(q)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise UserError(f"lesson {query!r} is ambiguous: it could be {', '.join(l.id for l in hits)}.")
    ids = [l.id for l in lessons]
    hint = suggest(q, ids) or f" Lessons: {', '.join(ids)}."
    raise UserError(f"no lesson {query!r}.{hint} List them with: dlc lessons")
