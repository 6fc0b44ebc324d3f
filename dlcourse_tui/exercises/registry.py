"""The exercises of every lesson, read from lessons/NN-slug/exercises/NAME/exercise.toml.
Nothing here imports torch: `dlc exercise list` and the app read it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dlcourse_tui.errors import UserError, suggest

if TYPE_CHECKING:
    from dlcourse_tui.lessons import Lesson

DEFAULT_TIME_LIMIT = 10.0  # seconds the checks may run (torch's import not counted)
FILES = ("exercise.toml", "starter.py", "solution.py", "checks.py")


class ExerciseError(Exception):
    """An exercise folder that does not follow the format; names the file and the fault."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it lives, what to write and how long its checks may take."""

    name: str
    lesson: str  # lesson id
    folder: Path
    title: str
    functions: tuple[str, ...]  # what the learner's file must define
    task: str  # what to do, a few lines
    time_limit: float = DEFAULT_TIME_LIMIT
    use: str = ""  # what `--use NAME` replaces in a run, in words ("" : it is checked only)

    @property
    def starter(self) -> Path:
        return self.folder / "starter.py"

    @property
    def solution(self) -> Path:
        return self.folder / "solution.py"

    @property
    def checks(self) -> Path:
        return self.folder / "checks.py"

    @property
    def plug(self) -> Path:
        return self.folder / "plug.py"


def load_exercise(folder: Path, lesson_id: str) -> Exercise:
    """One exercise folder, validated; ExerciseError names the file and the key at fault."""
    for name in FILES:
        if not (folder / name).is_file():
            raise ExerciseError(f"{folder}: {name} is missing (an exercise has {', '.join(FILES)}).")
    path = folder / "exercise.toml"
    try:
        meta = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ExerciseError(f"{path}: not valid TOML: {e}.") from None
    for key, kind in (("title", str), ("task", str), ("functions", list)):
        if not isinstance(meta.get(key), kind) or not meta[key]:
            raise ExerciseError(f"{path}: {key} is missing or not a {'list' if kind is list else 'string'}.")
    limit = meta.get("time_limit", DEFAULT_TIME_LIMIT)
    if not isinstance(limit, (int, float)) or limit <= 0:
        raise ExerciseError(f"{path}: time_limit must be a positive number of seconds.")
    use = meta.get("use", "")
    if use and not (folder / "plug.py").is_file():
        raise ExerciseError(f"{path}: use says what --use replaces, but there is no plug.py doing it.")
    return Exercise(name=folder.name, lesson=lesson_id, folder=folder, title=meta["title"],
                    functions=tuple(meta["functions"]), task=meta["task"].strip(), time_limit=float(limit), use=use)


def lesson_exercises(lesson: "Lesson") -> list[Exercise]:
    """The exercises in `lesson`'s folder, by name; ExerciseError for a broken one."""
    root = lesson.folder / "exercises"
    if not root.is_dir():
        return []
    return [load_exercise(p, lesson.id) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith((".", "_"))]


def all_exercises() -> list[Exercise]:
    """Every exercise of every lesson, in course order (broken ones left out: `dlc lesson check` names them)."""
    from dlcourse_tui.lessons import load_lessons

    out = []
    for lesson in load_lessons():
        try:
            out += lesson_exercises(lesson)
        except ExerciseError:
            continue
    return out


def find_exercise(name: str) -> Exercise:
    """The exercise called `name`, or UserError with the closest names."""
    exercises = all_exercises()
    for ex in exercises:
        if ex.name == name:
            return ex
    names = [ex.name for ex in exercises]
    hint = suggest(name, names) or f" Exercises: {', '.join(names)}."
    raise UserError(f"no exercise {name!r}.{hint} See them all with: dlc exercise list")
