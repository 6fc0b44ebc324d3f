"""Diagnoses that explain a run: each a rule over metrics the run already has, each one
sentence pointing to the section of the lesson that explains it.

    overfitting  the train/val accuracy gap grew by 10 points or more, or the validation
                 loss rose 20 % above its lowest while the training loss kept falling
    diverging    the training loss rose to twice its lowest
    flat         the training loss has not moved (within 2 %) over the whole run
    chance       validation accuracy within 5 points of chance at the last evaluations
    d-wins       a GAN's discriminator tells real from fake almost always (≥ 95 %) while the
                 generator's loss stays high (D(G(z)) under 2 %)
    band         the headline metric left the lesson's expected band (reference.json) and
                 stayed out; the knobs that differ from the lesson's defaults are named
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlcourse_tui.course.reference import Reference
from dlcourse_tui.engine.config import number_text

if TYPE_CHECKING:
    from dlcourse_tui.engine.config import RunConfig
    from dlcourse_tui.engine.runs import RunRecord
    from dlcourse_tui.lessons import Lesson

CLASSES = {"shapes": 10, "digits": 10, "mnist": 10, "fashion-mnist": 10, "cifar10": 10, "scenes": 10,
           "blobs": 2, "moons": 2, "circles": 2, "spirals": 2, "xor": 2}
SECTIONS = {  # words a heading of the lesson may hold, for each rule, in order of preference
    "overfitting": ("overfit", "weight decay", "dropout", "regulari", "watch"),
    "diverging": ("learning rate", "watch", "curves"),
    "flat": ("learning rate", "watch", "curves"),
    "chance": ("watch", "curves", "try"),
    "d-wins": ("fail", "balance", "watch"),
    "band": ("watch", "curves", "try"),
}


@dataclass(frozen=True)
class Diagnosis:
    """One finding about a run, as a learner reads it."""

    rule: str
    sentence: str
    section: str = ""  # the heading of the lesson's section that explains it

    @property
    def text(self) -> str:
        return self.sentence + (f" (see the lesson's section “{self.section}”)" if self.section else "")


def diagnose(lines: list[dict[str, Any]], config: dict[str, Any], lesson: "Lesson | None" = None,
             reference: Reference | None = None) -> list[Diagnosis]:
    """Every rule that fires on a run's metric lines (metrics.jsonl) and config."""
    steps = [m for m in lines if m.get("type") == "step" and isinstance(m.get("loss"), (int, float))]
    evals = [m for m in lines if m.get("type") == "eval"]
    epochs = {m["epoch"]: m for m in lines if m.get("type") == "epoch"}
    found: list[tuple[str, str]] = []
    found += _overfitting(evals, epochs)
    for phase in dict.fromkeys(m.get("phase") for m in steps):  # a run in phases (pretraining, probe) has a loss per phase
        found += _loss_shape([m for m in steps if m.get("phase") == phase], config)
    found += _chance(evals, config)
    found += _d_wins(steps)
    if reference is not None and lesson is not None:
        found += _band(evals, config, lesson, reference)
    return [Diagnosis(rule, sentence, _section(lesson, rule)) for rule, sentence in found]


def diagnose_run(record: "RunRecord", config: "RunConfig") -> list[Diagnosis]:
    """Every rule that fires on a run of the store (against its lesson's expected band when
    the lesson ships one); the sentences are kept in its summary.json as "diagnoses"."""
    from dlcourse_tui.course.reference import load_reference
    from dlcourse_tui.errors import UserError
    from dlcourse_tui.lessons import find_lesson

    try:
        lesson = find_lesson(config.lesson)
    except UserError:  # a lesson no longer there: the rules that need none still speak
        lesson = None
    reference = load_reference(lesson.folder) if lesson is not None else None
    found = diagnose(record.metrics(), config.to_dict(), lesson, reference)
    if found:
        record.annotate(diagnoses=[d.text for d in found])
    return found


def _pct(v: float) -> str:
    return f"{v * 100:.1f}%"


def _overfitting(evals: list[dict], epochs: dict[int, dict]) -> list[tuple[str, str]]:
    gaps = [(e["epoch"], epochs[e["epoch"]]["train_acc"] - e["val_acc"], epochs[e["epoch"]]["train_acc"], e["val_acc"])
            for e in evals if "val_acc" in e and "train_acc" in epochs.get(e["epoch"], {})]
    if len(gaps) >= 3:
        low = min(gaps, key=lambda g: g[1])
        last = gaps[-1]
        if last[1] >= 0.10 and last[1] - low[1] >= 0.10:
            return [("overfitting", f"Overfitting: at epoch {last[0]} training accuracy is {_pct(last[2])} and validation "
                                    f"{_pct(last[3])}; the gap grew from {low[1] * 100:.0f} to {last[1] * 100:.0f} points "
                                    f"since epoch {low[0]}.")]
        return []
    losses = [(e["epoch"], e["val_loss"], epochs.get(e["epoch"], {}).get("train_loss")) for e in evals if "val_loss" in e]
    if len(losses) >= 3 and all(t is not None for _, _, t in losses):
        best = min(losses, key=lambda l: l[1])
        last = losses[-1]
        if last[1] > 1.2 * best[1] > 0 and last[2] < best[2]:
            return [("overfitting", f"Overfitting: the validation loss rose from {best[1]:.3g} (epoch {best[0]}) to "
                                    f"{last[1]:.3g} while the training loss kept falling.")]
    return []


def _loss_shape(steps: list[dict], config: dict[str, Any]) -> list[tuple[str, str]]:
    if len(steps) < 10:
        return []
    losses = [m["loss"] for m in steps]
    lr = config.get("train", {}).get("lr")
    low_i = min(range(len(losses)), key=losses.__getitem__)
    if losses[-1] > 2 * losses[low_i] > 0 and low_i < len(losses) - 1 and losses[-1] > losses[0]:
        return [("diverging", f"The training loss rose from {losses[low_i]:.3g} (step {steps[low_i]['step']}) to "
                              f"{losses[-1]:.3g}: the updates overshoot; try a smaller learning rate than {lr:g}.")]
    first, last = losses[0], losses[-1]
    if abs(first) > 0 and abs(last - first) / abs(first) < 0.02 and max(losses) - min(losses) < 0.05 * abs(first):
        return [("flat", f"The training loss has stayed at about {last:.3g} since the first step: nothing is being "
                         f"learned; try a larger learning rate than {lr:g}, or check the data.")]
    return []


def _chance(evals: list[dict], config: dict[str, Any]) -> list[tuple[str, str]]:
    classes = CLASSES.get(str(config.get("data", {}).get("name", "")))
    accs = [(e["epoch"], e["val_acc"]) for e in evals if "val_acc" in e]
    if not classes or len(accs) < 2:
        return []
    chance = 1 / classes
    if all(a <= chance + 0.05 for _, a in accs[-2:]):
        since = accs[-1][0]
        for epoch, a in reversed(accs):
            if a > chance + 0.05:
                break
            since = epoch
        return [("chance", f"Validation accuracy is {_pct(accs[-1][1])}, chance for {classes} classes "
                           f"({_pct(chance)}), since epoch {since}: the model has learned nothing it can use.")]
    return []


def _d_wins(steps: list[dict]) -> list[tuple[str, str]]:
    d = [m for m in steps if isinstance(m.get("d_acc_real"), (int, float)) and isinstance(m.get("d_acc_fake"), (int, float))]
    if len(d) < 10:
        return []
    tail = d[-max(3, len(d) // 3):]
    g_loss = [m["loss_g"] for m in tail if isinstance(m.get("loss_g"), (int, float))]
    # D may well be right most of the time while G still learns (minibatch discrimination makes
    # it sharp): it wins when G's loss −log D(G(z)) also stays high, D(G(z)) under 2 %
    if all(m["d_acc_real"] >= 0.95 and m["d_acc_fake"] >= 0.95 for m in tail) and g_loss and min(g_loss) >= 4:
        return [("d-wins", f"The discriminator wins: since step {tail[0]['step']} it tells real from fake "
                           f"{min(min(m['d_acc_real'], m['d_acc_fake']) for m in tail) * 100:.0f}% of the time or more, "
                           "so the generator's gradients carry almost nothing.")]
    return []


def _band(evals: list[dict], config: dict[str, Any], lesson: "Lesson", reference: Reference) -> list[tuple[str, str]]:
    target = lesson.target
    name = target.metric if target else "val_acc"
    band = reference.bands.get(name)
    if band is None:
        return []
    higher = target is None or target.mode == "max"
    outside = []
    for e in evals:
        if name in e and (b := band.at(e["epoch"])) is not None:
            outside.append((e["epoch"], _clearly_outside(e[name], b, higher), b, e[name]))
    if len(outside) < 2 or not outside[-1][1]:
        return []
    since = outside[-1][0]
    for epoch, out, _, _ in reversed(outside):
        if not out:
            break
        since = epoch
    if sum(o for _, o, _, _ in outside) < 2:
        return []
    epoch, _, (low, _, high), value = outside[-1]
    label = name.removeprefix("val_").replace("_", " ")
    fmt = _pct if name.endswith("acc") else (lambda v: f"{v:.3g}")
    where = "below" if higher else "above"
    sentence = (f"Validation {label} is {where} the expected band since epoch {since} ({fmt(value)} at epoch {epoch}; "
                f"runs of the default config give {fmt(low)}–{fmt(high)} there).")
    changed = _changed_knobs(config, lesson)
    if changed:
        sentence += " " + changed[0].upper() + changed[1:] + "."
    return [("band", sentence)]


def _clearly_outside(value: float, band: tuple[float, float, float], higher: bool) -> bool:
    """Whether `value` is past the band's bad edge by more than half the edge's distance to
    the median. A band from a few seeds has its 10 % edge next to its worst seed, so a run of
    the default config, that very seed included, often ends just past it: that is no news."""
    low, median, high = band
    if higher:
        return value < low - 0.5 * (median - low)
    return value > high + 0.5 * (high - median)


def _changed_knobs(config: dict[str, Any], lesson: "Lesson") -> str:
    """'the learning rate is 10× the default (0.1 vs 0.01), weight_decay 0.5 (default 0)'."""
    from dlcourse_tui.course.facts import dotted, lesson_defaults

    defaults = lesson_defaults(lesson.experiment)
    flat = dotted(config)
    parts = []
    for key in lesson.knobs:
        if key not in defaults or key not in flat or flat[key] == defaults[key]:
            continue
        value, default = flat[key], defaults[key]
        if key == "train.lr" and isinstance(value, (int, float)) and default:
            ratio = value / default
            times = (f"{number_text(float(f'{ratio:.3g}'))}× the default" if ratio >= 1
                     else f"1/{number_text(float(f'{1 / ratio:.3g}'))} of the default")
            parts.append(f"the learning rate is {times} ({value:g} vs {default:g})")
        else:
            parts.append(f"{lesson.short_key(key)} {value} (default {default})")
    return ", ".join(parts)


def _section(lesson: "Lesson | None", rule: str) -> str:
    if lesson is None:
        return ""
    headings = re.findall(r"^#{2,3}\s+(.+?)\s*$", lesson.body, re.M)
    for word in SECTIONS.get(rule, ()):
        for h in headings:
            if word in h.lower():
                return h
    return ""
