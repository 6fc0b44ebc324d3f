"""For `dlc lesson check`: each exercise of a lesson loads, its starter fails its checks (the
learner has something to do), and its reference solution passes them all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlcourse_tui.exercises.registry import ExerciseError, all_exercises, lesson_exercises

if TYPE_CHECKING:
    from dlcourse_tui.lessons import Lesson


def exercise_problems(lesson: "Lesson") -> list[str]:
    """One sentence per problem of `lesson`'s exercises (none: they are ready)."""
    try:
        exercises = lesson_exercises(lesson)
    except ExerciseError as e:
        return [str(e)]
    if not exercises:
        return []
    from dlcourse_tui.exercises.worker import grade_in_process

    problems = []
    others = {ex.name: ex for ex in all_exercises() if ex.lesson != lesson.id}
    for ex in exercises:
        if ex.name in others:
            problems.append(f"{ex.folder}: the exercise name {ex.name!r} is also used by lesson {others[ex.name].lesson}.")
        try:
            starter, solution = grade_in_process(ex.folder, ex.starter), grade_in_process(ex.folder, ex.solution)
        except Exception as e:  # noqa: BLE001 - checks.py or solution.py that does not even import
            problems.append(f"{ex.folder}: its checks or reference do not load: {type(e).__name__}: {e}")
            continue
        if not starter.total:
            problems.append(f"{ex.checks}: defines no checks (mark them with @check).")
        if starter.ok:
            problems.append(f"{ex.starter}: the starter passes every check; leave the learner something to write.")
        elif starter.kind not in ("not-written", "check"):
            problems.append(f"{ex.starter}: the starter fails for the wrong reason: {starter.headline}")
        if not solution.ok:
            problems.append(f"{ex.solution}: the reference solution fails: {solution.headline} "
                            + " ".join(solution.lines[:3]))
    return problems
