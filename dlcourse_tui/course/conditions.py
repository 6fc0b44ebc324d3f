"""Completion conditions: small sentences over what the app and the run store know.

    condition := clause ("and" clause)*
    clause    := "lesson opened"
               | "screen" NAME "viewed"            browser, picker, dashboard, runs, run, help, walkthrough, exercises
               | "picture" NAME "viewed"           a picture the lesson's runs make (templates, boundary, ...)
               | "model" NAME "picked"             in the picker, or by a run of the lesson
               | "variant" NAME "chosen"           likewise
               | "knob" KEY "set"                  changed from the lesson's default (picker or a run)
               | "knob" KEY OP VALUE               OP: = != < <= > >=
               | "knob" KEY "in" LO ".." HI
               | "run" STATE ["with" FILTER ("," FILTER)*]
                                                   STATE: started, completed, stopped, failed;
                                                   FILTER: model NAME | variant NAME | knob KEY OP VALUE
               | "metric" NAME OP (VALUE | "previous")
                                                   the lesson's newest completed run; "previous": the
                                                   completed run before it (val_acc, train_acc, gap, ...)

Each clause is a small frozen dataclass with `holds(facts)` and `text`; parsing a
malformed sentence raises ConditionError saying which word is wrong.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlcourse_tui.course.facts import Facts, RunFacts

SCREENS = ("browser", "picker", "dashboard", "runs", "run", "help", "walkthrough", "exercises")
RUN_STATES = ("started", "completed", "stopped", "failed")
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_OP = r"(=|!=|<=|>=|<|>)"


class ConditionError(ValueError):
    """A condition that does not parse; the message names the part at fault."""


def parse_value(text: str) -> Any:
    """A knob or metric value as written: a number, true/false, or a word."""
    t = text.strip().strip('"').strip("'")
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t


def compare(left: Any, op: str, right: Any) -> bool:
    """`left OP right`, False when they cannot be compared (a number against a word)."""
    try:
        if isinstance(right, (int, float)) and not isinstance(right, bool) and isinstance(left, str):
            return False
        return bool(OPS[op](left, right))
    except TypeError:
        return False


# -- clauses -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LessonOpened:
    text: str = "lesson opened"

    def holds(self, facts: "Facts") -> bool:
        return facts.app.opened


@dataclass(frozen=True)
class Viewed:
    kind: str  # "screen" | "picture"
    name: str
    text: str = ""

    def holds(self, facts: "Facts") -> bool:
        seen = facts.app.screens if self.kind == "screen" else facts.app.pictures
        return self.name in seen


@dataclass(frozen=True)
class Picked:
    kind: str  # "model" | "variant"
    name: str
    text: str = ""

    def holds(self, facts: "Facts") -> bool:
        chosen = facts.app.model if self.kind == "model" else facts.app.variant
        return chosen == self.name or any(_run_value(r, self.kind) == self.name for r in facts.runs)


@dataclass(frozen=True)
class KnobIs:
    key: str  # a dotted key, e.g. "train.lr"
    op: str = ""  # "" (changed from the default), an OP, or "in"
    value: Any = None  # a value, or (lo, hi) for "in"
    text: str = ""

    def satisfied_by(self, value: Any, default: Any) -> bool:
        if value is None:
            return False
        if not self.op:
            return value != default
        if self.op == "in":
            lo, hi = self.value
            return compare(value, ">=", lo) and compare(value, "<=", hi)
        return compare(value, self.op, self.value)

    def holds(self, facts: "Facts") -> bool:
        default = facts.defaults.get(self.key)
        if self.key in facts.app.knobs and self.satisfied_by(facts.app.knobs[self.key], default):
            return True
        return any(self.satisfied_by(r.config.get(self.key, default), default) for r in facts.runs)


@dataclass(frozen=True)
class RunFilter:
    """One `with` part of a run clause: model NAME, variant NAME or knob KEY OP VALUE."""

    kind: str  # "model" | "variant" | "knob"
    name: str
    op: str = "="
    value: Any = None

    def matches(self, run: "RunFacts", defaults: dict[str, Any]) -> bool:
        if self.kind == "knob":
            return KnobIs(self.name, self.op, self.value).satisfied_by(run.config.get(self.name, defaults.get(self.name)),
                                                                       defaults.get(self.name))
        return _run_value(run, self.kind) == self.name


@dataclass(frozen=True)
class RunIs:
    state: str  # started | completed | stopped | failed
    filters: tuple[RunFilter, ...] = ()
    text: str = ""

    def matching(self, facts: "Facts") -> list["RunFacts"]:
        runs = [r for r in facts.runs if all(f.matches(r, facts.defaults) for f in self.filters)]
        if self.state == "started":
            return runs
        return [r for r in runs if r.status == self.state]

    def holds(self, facts: "Facts") -> bool:
        return bool(self.matching(facts))


@dataclass(frozen=True)
class MetricIs:
    name: str
    op: str
    value: Any  # a number, or the word "previous"
    text: str = ""

    def holds(self, facts: "Facts") -> bool:
        done = [r for r in facts.runs if r.status == "completed"]
        if not done or self.name not in done[-1].metrics:
            return False
        if self.value == "previous":
            if len(done) < 2 or self.name not in done[-2].metrics:
                return False
            return compare(done[-1].metrics[self.name], self.op, done[-2].metrics[self.name])
        return compare(done[-1].metrics[self.name], self.op, self.value)


Clause = LessonOpened | Viewed | Picked | KnobIs | RunIs | MetricIs


def _run_value(run: "RunFacts", kind: str) -> str:
    return run.model if kind == "model" else run.variant


@dataclass(frozen=True)
class Condition:
    """Clauses that must all hold; `text` is the sentence as the author wrote it."""

    clauses: tuple[Clause, ...]
    text: str

    def holds(self, facts: "Facts") -> bool:
        return all(c.holds(facts) for c in self.clauses)

    def unmet(self, facts: "Facts") -> list[str]:
        """The clauses that do not hold yet, as written."""
        return [c.text for c in self.clauses if not c.holds(facts)]


# -- parsing -------------------------------------------------------------------------------
def parse_condition(text: str, resolve_key: Callable[[str], str] = lambda k: k) -> Condition:
    """Parse `text`; `resolve_key` turns a knob's short name (lr) into its dotted key
    (train.lr) or raises ConditionError."""
    if not text or not text.strip():
        raise ConditionError("the condition is empty")
    parts = [p.strip() for p in re.split(r"\s+and\s+", text.strip())]
    return Condition(tuple(_clause(p, resolve_key) for p in parts), text.strip())


def _clause(part: str, resolve_key: Callable[[str], str]) -> Clause:
    words = part.split()
    head = words[0] if words else ""
    if part == "lesson opened":
        return LessonOpened(text=part)
    if head in ("screen", "picture"):
        if len(words) != 3 or words[2] != "viewed":
            raise ConditionError(f"{part!r}: write it as '{head} NAME viewed'")
        if head == "screen" and words[1] not in SCREENS:
            raise ConditionError(f"{part!r}: no screen {words[1]!r}; screens: {', '.join(SCREENS)}")
        return Viewed(head, words[1], text=part)
    if head in ("model", "variant"):
        verb = "picked" if head == "model" else "chosen"
        if len(words) != 3 or words[2] != verb:
            raise ConditionError(f"{part!r}: write it as '{head} NAME {verb}'")
        return Picked(head, words[1], text=part)
    if head == "knob":
        return _knob(part, resolve_key)
    if head == "run":
        if len(words) < 2 or words[1] not in RUN_STATES:
            raise ConditionError(f"{part!r}: write it as 'run STATE' with STATE one of {', '.join(RUN_STATES)}")
        filters: tuple[RunFilter, ...] = ()
        if len(words) > 2:
            if words[2] != "with":
                raise ConditionError(f"{part!r}: after 'run {words[1]}' comes 'with FILTER, FILTER'")
            rest = part.split(None, 3)[3] if len(words) > 3 else ""
            filters = tuple(_filter(f.strip(), part, resolve_key) for f in rest.split(","))
        return RunIs(words[1], filters, text=part)
    if head == "metric":
        m = re.fullmatch(rf"metric\s+([A-Za-z_][\w]*)\s*{_OP}\s*(\S+)", part)
        if not m:
            raise ConditionError(f"{part!r}: write it as 'metric NAME OP VALUE' (OP: = != < <= > >=; "
                                 "VALUE a number or 'previous')")
        value = m.group(3)
        return MetricIs(m.group(1), m.group(2), "previous" if value == "previous" else parse_value(value), text=part)
    raise ConditionError(f"{part!r}: a clause starts with lesson, screen, picture, model, variant, knob, run or metric")


def _knob(part: str, resolve_key: Callable[[str], str]) -> KnobIs:
    m = re.fullmatch(r"knob\s+(\S+)\s+set", part)
    if m:
        return KnobIs(resolve_key(m.group(1)), text=part)
    m = re.fullmatch(r"knob\s+(\S+)\s+in\s+(\S+)\s*\.\.\s*(\S+)", part)
    if m:
        lo, hi = parse_value(m.group(2)), parse_value(m.group(3))
        if not all(isinstance(v, (int, float)) for v in (lo, hi)) or lo > hi:
            raise ConditionError(f"{part!r}: 'in LO..HI' needs two numbers, LO ≤ HI")
        return KnobIs(resolve_key(m.group(1)), "in", (lo, hi), text=part)
    m = re.fullmatch(rf"knob\s+([^\s=<>!]+)\s*{_OP}\s*(\S+)", part)
    if m:
        return KnobIs(resolve_key(m.group(1)), m.group(2), parse_value(m.group(3)), text=part)
    raise ConditionError(f"{part!r}: write it as 'knob KEY set', 'knob KEY OP VALUE' or 'knob KEY in LO..HI'")


def _filter(text: str, part: str, resolve_key: Callable[[str], str]) -> RunFilter:
    words = text.split()
    if len(words) == 2 and words[0] in ("model", "variant"):
        return RunFilter(words[0], words[1])
    m = re.fullmatch(rf"knob\s+([^\s=<>!]+)\s*{_OP}\s*(\S+)", text)
    if m:
        return RunFilter("knob", resolve_key(m.group(1)), m.group(2), parse_value(m.group(3)))
    raise ConditionError(f"{part!r}: a run filter is 'model NAME', 'variant NAME' or 'knob KEY OP VALUE' (got {text!r})")


def knob_keys(condition: Condition) -> list[str]:
    """Every knob key the condition names (for checks against the lesson)."""
    keys = []
    for c in condition.clauses:
        if isinstance(c, KnobIs):
            keys.append(c.key)
        elif isinstance(c, RunIs):
            keys += [f.name for f in c.filters if f.kind == "knob"]
    return keys
