"""A learner's progress through one lesson: $DLC_HOME/progress/<lesson>.json, written
atomically after every change, so a closed app or terminal loses nothing.

    {"version": 1, "position": 2, "done": ["first-run", "templates"], "hints": {"lr": 1},
     "answers": {"full-batch-steps": {"given": "behind", "run": "", "right": null, "observed": null}},
     "app": {"opened": true, "screens": ["runs"], "pictures": ["templates"], "model": "", ...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcourse_tui.course.facts import AppFacts
from dlcourse_tui.engine.runs import dlc_home, write_json_atomic

VERSION = 1


def run_stamp() -> str:
    """Now, written as run ids begin (engine/runs.make_run_dir), so the two compare as text."""
    from datetime import datetime

    return f"{datetime.now():%Y%m%d-%H%M%S}"


def progress_dir() -> Path:
    return dlc_home() / "progress"


@dataclass
class Answer:
    """What the learner answered, and once the run it predicted has ended, how it went."""

    given: Any
    at: str = ""  # when it was given, as run ids begin (YYYYMMDD-HHMMSS): runs after it are its runs
    run: str = ""  # the run it was asked before ("" for a question not tied to a run)
    right: bool | None = None  # None until revealed
    observed: str | None = None  # the choice the learner's own run showed, when the question says how to tell

    def to_dict(self) -> dict[str, Any]:
        return {"given": self.given, "at": self.at, "run": self.run, "right": self.right, "observed": self.observed}


@dataclass
class Progress:
    """Where the learner is in a lesson's walkthrough."""

    lesson: str
    position: int = 0  # index of the step the learner is on
    done: list[str] = field(default_factory=list)  # ids of ticked steps
    hints: dict[str, int] = field(default_factory=dict)  # step id -> hints revealed
    answers: dict[str, Answer] = field(default_factory=dict)
    app: AppFacts = field(default_factory=AppFacts)

    @property
    def path(self) -> Path:
        return progress_dir() / f"{self.lesson}.json"

    @classmethod
    def load(cls, lesson: str) -> "Progress":
        """The saved progress of `lesson`, or a fresh one (a damaged file starts over)."""
        p = cls(lesson)
        try:
            data = json.loads(p.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return p
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return p
        try:
            return cls(lesson, int(data.get("position", 0)), [str(d) for d in data.get("done", [])],
                       {str(k): int(v) for k, v in data.get("hints", {}).items()},
                       {str(k): Answer(v.get("given"), str(v.get("at", "")), str(v.get("run", "")), v.get("right"),
                                       v.get("observed"))
                        for k, v in data.get("answers", {}).items()},
                       AppFacts.from_dict(data.get("app", {})))
        except (TypeError, ValueError, AttributeError):
            return p

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, {
            "version": VERSION, "lesson": self.lesson, "position": self.position, "done": self.done,
            "hints": self.hints, "answers": {k: a.to_dict() for k, a in self.answers.items()},
            "app": self.app.to_dict(),
        })

    def reset(self) -> None:
        """Forget everything of this lesson's walkthrough (the runs stay)."""
        self.path.unlink(missing_ok=True)
        self.position, self.done, self.hints, self.answers, self.app = 0, [], {}, {}, AppFacts()
