"""Walkthrough steps and prediction questions, written in lesson.md as fenced blocks.

A block is TOML inside a fence whose info string says what it is, so the file stays
plain Markdown on any forge:

    ```step
    id = "first-run"                       # stable: progress is kept by it, never by line
    do = "Run the experiment as it is: press r in the browser."
    command = "dlc run linear-classifier"  # the same, headless (optional)
    done = "run completed"                 # conditions.py
    hints = ["r starts the lesson's default experiment.", "..."]   # revealed one at a time
    notice = "Validation accuracy stops near 30 %: a template cannot follow a shape that moves."
    ```

    ```question
    id = "full-batch-steps"
    ask = "Full-batch GD takes one step per epoch. After 10 epochs, ahead or behind SGD?"
    choices = ["ahead", "behind"]          # or: answer = 0.88 with tolerance = 0.01
    answer = "behind"
    explain = "79 noisy steps per epoch beat one exact step."
    before = "variant full-batch"          # asked before a run matching this (optional)
    observed = { behind = "metric val_acc < previous", ahead = "metric val_acc > previous" }
    ```

`observed` maps each choice to a condition over the learner's own runs: after the run it
was asked before, the one that holds is what their run showed.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dlcourse_tui.course.conditions import Condition, ConditionError, RunFilter, _filter, parse_condition

BLOCK = re.compile(r"^```(step|question)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_ID = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
STEP_KEYS = {"id", "do", "command", "done", "hints", "notice"}
QUESTION_KEYS = {"id", "ask", "choices", "answer", "tolerance", "explain", "before", "observed"}


class BlockError(ValueError):
    """A malformed block; the message names the file, the line, the block and the fault."""


@dataclass(frozen=True)
class Step:
    """One thing to do, and the condition that says it is done."""

    id: str
    do: str
    done: Condition
    hints: tuple[str, ...] = ()
    notice: str = ""
    command: str = ""
    line: int = 0


@dataclass(frozen=True)
class Question:
    """A prediction: the prompt, the choices (or a number), the answer and why."""

    id: str
    ask: str
    answer: Any  # one of choices, or a number
    explain: str
    choices: tuple[str, ...] = ()
    tolerance: float = 0.0
    before: tuple[RunFilter, ...] = ()  # asked before a run these match (empty: not tied to a run)
    before_text: str = ""
    observed: dict[str, Condition] = field(default_factory=dict)
    line: int = 0

    @property
    def numeric(self) -> bool:
        return not self.choices

    def is_right(self, given: Any) -> bool:
        """Whether `given` (a choice, or a number as text or float) is the answer."""
        if self.numeric:
            try:
                return abs(float(given) - float(self.answer)) <= self.tolerance
            except (TypeError, ValueError):
                return False
        return str(given).strip().lower() == str(self.answer).strip().lower()


@dataclass(frozen=True)
class Blocks:
    """A lesson's steps and questions in the order written, and its text without them."""

    steps: tuple[Step, ...] = ()
    questions: tuple[Question, ...] = ()
    reading: str = ""  # the Markdown to read: each block rendered as a short paragraph


def parse_blocks(body: str, path: Path, resolve_key: Callable[[str], str] = lambda k: k, line0: int = 0) -> Blocks:
    """The blocks of a lesson body (line0: lines before the body in the file, for messages)."""
    steps: list[Step] = []
    questions: list[Question] = []
    seen: dict[str, int] = {}
    pieces: list[str] = []
    last = 0
    for m in BLOCK.finditer(body):
        line = line0 + body.count("\n", 0, m.start()) + 1
        kind, text = m.group(1), m.group(2)
        where = f"{path}:{line}: {kind}"
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise BlockError(f"{where}: not valid TOML ({e}).") from None
        block_id = data.get("id")
        if not isinstance(block_id, str) or not _ID.match(block_id):
            raise BlockError(f"{where}: needs id = \"a-stable-name\" (lower case, digits and dashes), got {block_id!r}.")
        where = f"{path}:{line}: {kind} {block_id!r}"
        if block_id in seen:
            raise BlockError(f"{where}: the id is already used by the block at line {seen[block_id]}.")
        seen[block_id] = line
        if kind == "step":
            steps.append(_step(data, where, resolve_key, line))
            pieces += [body[last:m.start()], _step_text(steps[-1], len(steps))]
        else:
            questions.append(_question(data, where, resolve_key, line))
            pieces += [body[last:m.start()], _question_text(questions[-1])]
        last = m.end()
    pieces.append(body[last:])
    return Blocks(tuple(steps), tuple(questions), "".join(pieces))


def _unknown(data: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise BlockError(f"{where}: unknown key {extra[0]!r}; a block takes {', '.join(sorted(allowed))}.")


def _text(data: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise BlockError(f"{where}: needs {key} = \"...\" (text).")
    return value.strip()


def _condition(text: str, key: str, where: str, resolve_key: Callable[[str], str]) -> Condition:
    try:
        return parse_condition(text, resolve_key)
    except ConditionError as e:
        raise BlockError(f"{where}: {key}: {e}.") from None


def _step(data: dict[str, Any], where: str, resolve_key: Callable[[str], str], line: int) -> Step:
    _unknown(data, STEP_KEYS, where)
    hints = data.get("hints", [])
    if not isinstance(hints, list) or not all(isinstance(h, str) and h.strip() for h in hints):
        raise BlockError(f"{where}: hints must be a list of texts, e.g. hints = [\"first\", \"then\"].")
    return Step(data["id"], _text(data, "do", where), _condition(_text(data, "done", where), "done", where, resolve_key),
                tuple(h.strip() for h in hints), _text(data, "notice", where, required=False),
                _text(data, "command", where, required=False), line)


def _question(data: dict[str, Any], where: str, resolve_key: Callable[[str], str], line: int) -> Question:
    _unknown(data, QUESTION_KEYS, where)
    if "answer" not in data:
        raise BlockError(f"{where}: needs an answer (one of the choices, or a number).")
    choices = data.get("choices", [])
    if not isinstance(choices, list) or not all(isinstance(c, str) and c.strip() for c in choices):
        raise BlockError(f"{where}: choices must be a list of texts.")
    answer = data["answer"]
    tolerance = data.get("tolerance", 0.0)
    if choices:
        if len(choices) < 2 or len(set(choices)) != len(choices):
            raise BlockError(f"{where}: give two or more different choices.")
        if answer not in choices:
            raise BlockError(f"{where}: the answer {answer!r} is not one of the choices {choices}.")
    elif isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise BlockError(f"{where}: without choices the answer is a number (and tolerance = how far off is right).")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise BlockError(f"{where}: tolerance must be a number ≥ 0.")
    before_text = _text(data, "before", where, required=False)
    before: tuple[RunFilter, ...] = ()
    if before_text:
        try:
            before = tuple(_filter(f.strip(), before_text, resolve_key) for f in before_text.split(","))
        except ConditionError as e:
            raise BlockError(f"{where}: before: {e}.") from None
    observed_raw = data.get("observed", {})
    if not isinstance(observed_raw, dict):
        raise BlockError(f"{where}: observed must be a table, e.g. observed = {{ shrink = \"metric gap < previous\" }}.")
    observed = {}
    for choice, text in observed_raw.items():
        if choices and choice not in choices:
            raise BlockError(f"{where}: observed names {choice!r}, which is not one of the choices {choices}.")
        if not isinstance(text, str):
            raise BlockError(f"{where}: observed.{choice} must be a condition (text).")
        observed[choice] = _condition(text, f"observed.{choice}", where, resolve_key)
    return Question(data["id"], _text(data, "ask", where), answer, _text(data, "explain", where),
                    tuple(c.strip() for c in choices), float(tolerance), before, before_text, observed, line)


def _step_text(step: Step, n: int) -> str:
    """How a step reads in the lesson text: what to do (the walkthrough pane has the rest)."""
    command = f" Headless: `{step.command}`." if step.command else ""
    return f"**Step {n}.** {step.do}{command}\n"


def _question_text(q: Question) -> str:
    """How a question reads in the lesson text: the prompt and the choices, no answer."""
    options = f" ({' / '.join(q.choices)})" if q.choices else ""
    return f"**Predict.** {q.ask}{options}\n"
