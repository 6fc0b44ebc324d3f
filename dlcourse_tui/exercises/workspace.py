"""The learner's side of the exercises, under the data folder:

    $DLC_HOME/exercises/NAME.py             the learner's file (a copy of the starter at first)
    $DLC_HOME/exercises/.results/NAME.json  the last `dlc check` of it: outcome and the file's hash

A file that no longer matches the hash of its last check is "changed since the check"."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from dlcourse_tui.engine.runs import dlc_home, write_json_atomic
from dlcourse_tui.errors import UserError

if TYPE_CHECKING:
    from dlcourse_tui.exercises.registry import Exercise
    from dlcourse_tui.exercises.runner import Outcome

STATES = ("not started", "not checked", "changed since the check", "failing", "passing")


def workspace_dir() -> Path:
    return dlc_home() / "exercises"


def learner_file(ex: "Exercise") -> Path:
    return workspace_dir() / f"{ex.name}.py"


def _result_file(ex: "Exercise") -> Path:
    return workspace_dir() / ".results" / f"{ex.name}.json"


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start(ex: "Exercise", *, force: bool = False) -> tuple[Path, bool]:
    """Copy the starter into the workspace (unless the learner has a file there already, or
    `force`); the file's path and whether it was written now."""
    path = learner_file(ex)
    if path.exists() and not force:
        return path, False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.new")
        shutil.copyfile(ex.starter, tmp)
        tmp.replace(path)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}; point DLC_HOME at a folder you can write.") from None
    return path, True


def save_result(ex: "Exercise", path: Path, outcome: "Outcome") -> None:
    """Keep `outcome` as the last check of the learner's file (best effort: a read-only
    data folder loses the record, not the check)."""
    if path.resolve() != learner_file(ex).resolve() or not path.exists():
        return  # a file checked from elsewhere (--file) is not the workspace's
    try:
        _result_file(ex).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(_result_file(ex), {"sha256": file_hash(path), "outcome": asdict(outcome)})
    except OSError:
        pass


def last_result(ex: "Exercise") -> "tuple[Outcome, bool] | None":
    """The last check's outcome, and whether the file is still the one it checked; None if never checked."""
    from dlcourse_tui.exercises.runner import Outcome

    try:
        saved = json.loads(_result_file(ex).read_text(encoding="utf-8"))
        outcome = Outcome(**saved["outcome"])
        same = learner_file(ex).exists() and file_hash(learner_file(ex)) == saved["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return outcome, same


def state(ex: "Exercise") -> str:
    """One of STATES."""
    if not learner_file(ex).exists():
        return "not started"
    last = last_result(ex)
    if last is None:
        return "not checked"
    outcome, same = last
    if not same:
        return "changed since the check"
    return "passing" if outcome.ok else "failing"
