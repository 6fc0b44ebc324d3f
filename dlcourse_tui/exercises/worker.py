"""The check worker: `python -m dlcourse_tui.exercises.worker EXERCISE_DIR LEARNER_FILE RESULT_JSON LIMIT_S`.

Imports torch, the exercise's checks and reference first, then starts the clock: after
LIMIT_S seconds faulthandler prints where every thread is (the learner's line among them)
and ends the process, so an endless loop, even one inside a C call, stops on time. Then it
imports the learner's file and runs the checks in order until the first failure, and
writes what happened to RESULT_JSON (see runner.Outcome). The learner's prints go to stdout."""

from __future__ import annotations

import faulthandler
import importlib.util
import json
import os
import sys
import tomllib
import traceback
from dataclasses import asdict
from pathlib import Path
from types import ModuleType


def load_module(path: Path, name: str) -> ModuleType:
    """Import the file at `path` as a fresh module called `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    folder, learner, result_path, limit = Path(argv[0]), Path(argv[1]), Path(argv[2]), float(argv[3])
    try:  # a syntax error is reported at once, before torch is imported
        compile(learner.read_bytes(), str(learner.resolve()), "exec")
    except SyntaxError as e:
        result_path.write_text(json.dumps(asdict(syntax_outcome(e))), encoding="utf-8")
        return 0
    import torch

    torch.set_num_threads(1)
    checks, ref, functions = load_exercise_code(folder)
    faulthandler.dump_traceback_later(limit, exit=True)
    outcome = grade(learner.resolve(), functions, checks, ref)
    faulthandler.cancel_dump_traceback_later()
    sys.stdout.flush()
    result_path.write_text(json.dumps(asdict(outcome)), encoding="utf-8")
    return 0


def load_exercise_code(folder: Path) -> tuple[list, ModuleType, tuple[str, ...]]:
    """An exercise's checks (in order), its reference module and the functions to write."""
    from dlcourse_tui.exercises import checking

    meta = tomllib.loads((folder / "exercise.toml").read_text(encoding="utf-8"))
    checks = checking.checks_of(load_module(folder / "checks.py", f"dlc_exercise_checks_{folder.name}"))
    ref = load_module(folder / "solution.py", f"dlc_exercise_solution_{folder.name}")
    return checks, ref, tuple(meta["functions"])


def grade_in_process(folder: Path, learner: Path):  # noqa: ANN201 - Outcome
    """grade() here, without a worker or a time limit, for files dlc trusts (its own starters
    and references, in `dlc lesson check` and the tests); torch's random state is put back."""
    import torch

    checks, ref, functions = load_exercise_code(folder)
    rng = torch.get_rng_state()
    try:
        return grade(Path(learner).resolve(), functions, checks, ref)
    finally:
        torch.set_rng_state(rng)


def grade(learner: Path, functions: tuple[str, ...], checks: list, ref: ModuleType):  # noqa: ANN201 - Outcome
    """The Outcome of the learner's file under `checks`: the first failure, or all passed."""
    from dlcourse_tui.exercises import checking

    checking.NOTES.clear()
    try:
        return _grade(learner, functions, checks, ref, checking)
    finally:
        checking.HIDDEN = False


def _grade(learner: Path, functions: tuple[str, ...], checks: list, ref: ModuleType, checking: ModuleType):  # noqa: ANN201
    """grade()'s body: import the file, find its functions, run the checks in order."""
    import torch

    from dlcourse_tui.exercises.runner import Outcome

    total, hidden = len(checks), sum(c.hidden for c in checks)
    base = {"total": total, "hidden": hidden}
    try:
        mine = load_module(learner, "dlc_exercise_learner")
    except SyntaxError as e:
        return syntax_outcome(e, **base)
    except BaseException as e:  # noqa: BLE001 - whatever the file does at import
        return raised(e, learner, "while importing your file", **base)
    missing = [f for f in functions if not callable(getattr(mine, f, None))]
    if missing:
        have = sorted(k for k, v in vars(mine).items() if callable(v) and not k.startswith("_")
                      and getattr(v, "__module__", "") == mine.__name__)
        return Outcome(False, headline=f"your file defines no function {', '.join(missing)} "
                       f"(it defines {', '.join(have) or 'none'}); keep the starter's names.", kind="missing", **base)
    for i, c in enumerate(checks):
        checking.HIDDEN = c.hidden
        torch.manual_seed(0)
        label = f"{'hidden ' if c.hidden else ''}check {i + 1} of {total}" + ("" if c.hidden else f" ({c.title})")
        try:
            c.run(mine, ref)
        except checking.CheckFailed as e:
            return Outcome(False, passed=i, headline=f"{label} failed: {e.what}", lines=e.lines, kind="check", **base)
        except BaseException as e:  # noqa: BLE001 - the learner's code raised
            return raised(e, learner, f"in {label}", passed=i, **base)
    return Outcome(True, passed=total, notes=checking.notes(), **base)


def syntax_outcome(e: SyntaxError, **counts):  # noqa: ANN201 - Outcome
    """A syntax error with its line and a caret under the place Python points at."""
    from dlcourse_tui.exercises.runner import Outcome

    text = (e.text or "").rstrip("\n")
    lines = [f"line {e.lineno}: {text.rstrip()}"]
    if e.offset and text.strip():
        lines.append(" " * (len(f"line {e.lineno}: ") + e.offset - 1) + "^")
    return Outcome(False, headline=f"line {e.lineno}: syntax error: {e.msg}", lines=lines, kind="syntax",
                   line=e.lineno, **counts)


def raised(e: BaseException, learner: Path, when: str, **counts):  # noqa: ANN201 - Outcome
    """An exception as the learner needs it: the line of their file it came from."""
    from dlcourse_tui.exercises.runner import Outcome

    frames = traceback.extract_tb(e.__traceback__)
    theirs = [f for f in frames if Path(f.filename).resolve() == learner]
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    what = f"{type(e).__name__}: {first}".rstrip(": ")
    if not theirs:
        if any(Path(f.filename).name == "solution.py" for f in frames):
            return Outcome(False, headline=f"{when}: the reference solution failed ({what}); this is a bug in dlc's "
                           "exercise, not in your file.", kind="crash", **counts)
        return Outcome(False, headline=f"{when}: the check could not use what your function returned: {what}",
                       kind="error", **counts)
    f = theirs[-1]
    if isinstance(e, NotImplementedError):
        return Outcome(False, headline=f"{when}: {f.name} is not written yet: line {f.lineno} raises "
                       "NotImplementedError. Write your code there (the docstring says what to compute).",
                       lines=[f"line {f.lineno}: {f.line}"], kind="not-written", line=f.lineno, **counts)
    return Outcome(False, headline=f"{when}: your {f.name} raised {what} at line {f.lineno}",
                   lines=[f"line {f.lineno}: {f.line}"], kind="error", line=f.lineno, **counts)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main(sys.argv[1:]))
