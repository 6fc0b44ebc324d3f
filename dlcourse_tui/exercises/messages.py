"""An Outcome as the lines a learner reads: at most one screen."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlcourse_tui.exercises.registry import Exercise
    from dlcourse_tui.exercises.runner import Outcome

MAX_LINES = 20  # one screen of an 80×24 terminal, with the prompt


def outcome_lines(ex: "Exercise", path: Path, outcome: "Outcome") -> list[str]:
    """The report of one check: headline, details, the learner's prints, what to do next."""
    if outcome.ok:
        visible = outcome.total - outcome.hidden
        out = [f"{ex.name}: all {outcome.total} checks pass ({visible} visible, {outcome.hidden} hidden)."]
        out += [f"  {n}" for n in outcome.notes]
        if ex.use:
            out.append(f"Train with it: dlc run {ex.lesson} --use {ex.name}   ({ex.use})")
        return out[:MAX_LINES]
    out = [f"{ex.name}: {outcome.headline}"]
    out += [f"  {line}" for line in outcome.lines]
    if outcome.output:
        out.append("  your prints (last lines):")
        out += [f"    {line}" for line in outcome.output[-4:]]
    if len(out) > MAX_LINES - 2:
        out = out[:MAX_LINES - 3] + ["  …"]
    if outcome.passed:
        out.append(f"{outcome.passed} of {outcome.total} checks passed before this one; {outcome.hidden} of the "
                   f"{outcome.total} are hidden.")
    out.append(f"Your file: {path}")
    return out
