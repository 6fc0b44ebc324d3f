"""`dlc run LESSON --use NAME`: the learner's passing function in place of the project's own.

record_use checks each exercise (its last `dlc check`, or a new one when the file changed)
and records the names in the run's config as task.use, so the run folder says what it
trained with and a resumed run plugs them in again. plugged() imports the learner's file
and swaps what the exercise's plug.py names ("module:attribute" or "module:Class.method")
for the run's length, then puts the project's own back."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dlcourse_tui.errors import UserError

if TYPE_CHECKING:
    from dlcourse_tui.engine.config import RunConfig

USE_KEY = "use"  # task_args key the names are recorded under (task.use in the config)


def check_use_options(use: list[str], *, grid: bool, resume: str | None) -> None:
    """UserError for --use with options it does not combine with."""
    if use and grid:
        raise UserError("--use trains one run with your function; drop --grid (or run the variants one at a time).")
    if use and resume is not None:
        raise UserError("--resume continues a run with the functions it started with (its config records them); "
                        "drop --use.")


def record_use(config: "RunConfig", names: list[str]) -> "RunConfig":
    """`config` with `names` recorded as task.use, once each exercise is checked to pass and fit the lesson."""
    from dlcourse_tui.exercises.registry import find_exercise

    for name in dict.fromkeys(names):
        ex = find_exercise(name)
        if ex.lesson != config.lesson:
            raise UserError(f"--use {name}: that exercise belongs to lesson {ex.lesson}, not {config.lesson}: "
                            f"dlc run {ex.lesson} --use {name}")
        if not ex.use:
            raise UserError(f"--use {name}: this exercise is checked only; no part of a run is built from it.")
        ensure_passing(ex)
    return replace(config, task_args={**config.task_args, USE_KEY: list(dict.fromkeys(names))})


def ensure_passing(ex: Any) -> None:
    """UserError unless the learner's file passes its checks (the last check of this very file counts)."""
    from dlcourse_tui.exercises.runner import run_checks
    from dlcourse_tui.exercises.workspace import last_result, learner_file, save_result

    path = learner_file(ex)
    if not path.is_file():
        raise UserError(f"--use {ex.name}: you have not started it yet: dlc exercise start {ex.name}")
    last = last_result(ex)
    if last is not None and last[1]:  # this very file was checked: its result stands
        outcome = last[0]
    else:
        outcome = run_checks(ex, path)
        save_result(ex, path, outcome)
    if not outcome.ok:
        raise UserError(f"--use {ex.name}: your function does not pass its checks yet ({outcome.headline}); "
                        f"see the whole report with: dlc check {ex.name}")


@contextmanager
def plugged(config: "RunConfig") -> Iterator[None]:
    """While inside: the functions of every exercise in the config's task.use replace the project's own."""
    names = config.task_args.get(USE_KEY) or []
    if not names:
        yield
        return
    from dlcourse_tui.exercises.registry import find_exercise
    from dlcourse_tui.exercises.worker import load_module
    from dlcourse_tui.exercises.workspace import learner_file

    swaps: dict[str, Any] = {}
    for name in names:
        ex = find_exercise(name)
        try:
            mine = load_module(learner_file(ex), f"dlc_use_{name}")
        except Exception as e:  # noqa: BLE001 - a file changed (or removed) since its check
            raise UserError(f"--use {name}: your file {learner_file(ex)} no longer loads ({type(e).__name__}: {e}); "
                            f"check it again with: dlc check {name}") from None
        plug = load_module(ex.plug, f"dlc_plug_{name}")
        swaps.update(plug.plug(mine, config))
    undo = []
    try:
        for target, replacement in swaps.items():
            owner, attr = _resolve(target)
            undo.append((owner, attr, owner.__dict__.get(attr, _MISSING) if isinstance(owner, type) else getattr(owner, attr)))
            setattr(owner, attr, replacement)
        yield
    finally:
        for owner, attr, old in reversed(undo):
            if old is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, old)


_MISSING = object()


def _resolve(target: str) -> tuple[Any, str]:
    """'pkg.module:Class.attr' -> (Class, 'attr'); 'pkg.module:attr' -> (module, 'attr')."""
    module, _, path = target.partition(":")
    owner: Any = importlib.import_module(module)
    *parents, attr = path.split(".")
    for p in parents:
        owner = getattr(owner, p)
    return owner, attr
