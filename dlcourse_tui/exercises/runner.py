"""Run an exercise's checks on a learner's file in a worker process with a time limit, and
turn whatever happened (a result, a timeout, a crash) into one Outcome. No torch here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlcourse_tui.exercises.registry import Exercise

STARTUP_S = 120.0  # the worker's own start (Python, torch) before its clock runs; only a hang guard
PRINTS_KEPT = 8  # lines of the learner's own output shown with a result


@dataclass
class Outcome:
    """What one `dlc check` found: passed, or the first failure with the lines that show it."""

    ok: bool
    passed: int = 0
    total: int = 0
    hidden: int = 0
    headline: str = ""  # the failure in one sentence ("" when ok)
    lines: list[str] = field(default_factory=list)  # input, expected, got, the line of the file
    notes: list[str] = field(default_factory=list)  # gradient checks and their relative errors (when ok)
    kind: str = ""  # check | syntax | error | not-written | missing | timeout | crash
    line: int | None = None  # the learner's line it points at
    output: list[str] = field(default_factory=list)  # the learner's last printed lines


def run_checks(ex: "Exercise", path: Path, *, time_limit: float | None = None) -> Outcome:
    """Check the file at `path` against exercise `ex`, stopped after `time_limit` seconds
    (the exercise's own limit by default)."""
    limit = ex.time_limit if time_limit is None else time_limit
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        return Outcome(False, headline=f"{path} does not exist: start the exercise with dlc exercise start {ex.name}",
                       kind="missing")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONIOENCODING": "utf-8"}
    with tempfile.TemporaryDirectory(prefix="dlc-check-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "dlcourse_tui.exercises.worker", str(ex.folder), str(path), str(result), str(limit)]
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  errors="replace", timeout=limit + STARTUP_S)
        except subprocess.TimeoutExpired as e:  # the worker's own clock failed to stop it
            return timed_out(limit, _text(e.stderr), path, _text(e.stdout))
        prints = proc.stdout.splitlines()[-PRINTS_KEPT:]
        if result.is_file():
            import json

            outcome = Outcome(**json.loads(result.read_text(encoding="utf-8")))
            outcome.output = prints
            return outcome
    if "Timeout (" in proc.stderr:
        return timed_out(limit, proc.stderr, path, proc.stdout)
    tail = [line for line in proc.stderr.strip().splitlines()[-6:]]
    return Outcome(False, headline=f"the check process ended without a result (exit code {proc.returncode}): your code "
                   "may have exited, crashed Python or used up the memory.", lines=tail, kind="crash", output=prints)


def _text(b: bytes | str | None) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else (b or "")


def timed_out(limit: float, stderr: str, path: Path, stdout: str) -> Outcome:
    """A stopped worker's Outcome: the line of the learner's file it was running, from
    faulthandler's dump ('File "…", line N in f', innermost first)."""
    where = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', stderr)
    theirs = [(int(n), f) for p, n, f in where if Path(p).resolve() == path]
    lines, line = [], None
    if theirs:
        line, func = theirs[0]
        source = path.read_text(encoding="utf-8", errors="replace").splitlines()
        lines = [f"line {line}: {source[line - 1].strip() if line <= len(source) else ''}"]
        at = f" while running line {line} of your file (in {func})"
    else:
        at = ""
    return Outcome(False, headline=f"stopped after {limit:g} s{at}: an endless loop, or far more work than the task "
                   "needs (a loop over every element where a tensor operation would do)?", lines=lines, kind="timeout",
                   line=line, output=stdout.splitlines()[-PRINTS_KEPT:])
