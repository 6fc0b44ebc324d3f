"""What conditions are evaluated against: a lesson's runs from the run store, and what the
app saw the learner do (kept in the lesson's progress file, so `dlc tutorial` knows it too)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from dlcourse_tui.engine.config import flatten
from dlcourse_tui.engine.runs import RunRecord, list_runs


@dataclass(frozen=True)
class RunFacts:
    """One run of the lesson as conditions see it."""

    id: str
    lesson: str
    status: str  # running, completed, stopped, failed, interrupted
    model: str
    variant: str
    config: dict[str, Any]  # dotted keys: "train.lr", "model.dropout", "task.augment", ...
    metrics: dict[str, float]  # the summary's final metrics, and gap = train_acc − val_acc


@dataclass
class AppFacts:
    """What the learner did in the app (seen screens and pictures, the picker's state)."""

    opened: bool = False
    screens: set[str] = field(default_factory=set)
    pictures: set[str] = field(default_factory=set)
    model: str = ""
    variant: str = ""
    knobs: dict[str, Any] = field(default_factory=dict)  # dotted key -> value set in the picker

    def to_dict(self) -> dict[str, Any]:
        return {"opened": self.opened, "screens": sorted(self.screens), "pictures": sorted(self.pictures),
                "model": self.model, "variant": self.variant, "knobs": dict(self.knobs)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AppFacts":
        return cls(bool(d.get("opened")), set(d.get("screens", ())), set(d.get("pictures", ())),
                   str(d.get("model", "")), str(d.get("variant", "")), dict(d.get("knobs", {})))


@dataclass(frozen=True)
class Facts:
    """Everything a condition may ask about one lesson."""

    lesson: str
    defaults: dict[str, Any]  # the lesson's default settings, dotted
    runs: tuple[RunFacts, ...]  # this lesson's runs, oldest first
    app: AppFacts


def dotted(config: dict[str, Any]) -> dict[str, Any]:
    """A RunConfig.to_dict() (a run's config.json) with the dotted keys conditions and knobs
    use: train.lr, model.dropout, data.n_train, task.augment."""
    return flatten({"train": config.get("train", {}), "model": config.get("model", {}), "data": config.get("data", {}),
                    "task": config.get("task_args", {})})


def run_facts(record: RunRecord) -> RunFacts | None:
    """A run folder as RunFacts (None when its config cannot be read)."""
    try:
        cfg = record.config
    except (OSError, ValueError):
        return None
    metrics = {k: v for k, v in record.summary.get("metrics", {}).items() if isinstance(v, (int, float))}
    if "train_acc" in metrics and "val_acc" in metrics:
        metrics["gap"] = metrics["train_acc"] - metrics["val_acc"]
    return RunFacts(record.id, str(cfg.get("lesson", "")), record.status, str(cfg.get("model", {}).get("name", "")),
                    str(cfg.get("variant", "")), dotted(cfg), metrics)


def lesson_defaults(experiment: dict[str, Any]) -> dict[str, Any]:
    """The lesson's settings before any knob is turned, dotted as conditions name them."""
    from dlcourse_tui.engine.config import TrainConfig

    tree = {"train": experiment.get("train", {}), "model": experiment.get("model", {}),
            "data": experiment.get("data", {}), "task": experiment.get("task_args", {})}
    flat = flatten(tree)
    for name in TrainConfig.__dataclass_fields__:
        flat.setdefault(f"train.{name}", getattr(TrainConfig, name))
    return flat


def default_variant(experiment: dict[str, Any]) -> str:
    """The name of the lesson's variant that changes nothing (its default, as a run without
    --variant has it), or '' when there is none or several."""
    plain = [name for name, body in experiment.get("variants", {}).items()
             if isinstance(body, dict) and not (set(body) - {"description"})]
    return plain[0] if len(plain) == 1 else ""


def gather(lesson_id: str, experiment: dict[str, Any], app: AppFacts) -> Facts:
    """The facts of lesson `lesson_id` now: its runs (oldest first) and the app's. A run
    without a variant counts as one of the lesson's default variant ("minibatch")."""
    plain = default_variant(experiment)
    runs = [f if f.variant or not plain else replace(f, variant=plain)
            for f in map(run_facts, list_runs()) if f is not None and f.lesson == lesson_id]
    return Facts(lesson_id, lesson_defaults(experiment), tuple(runs), app)
