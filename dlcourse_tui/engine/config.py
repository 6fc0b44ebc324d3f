"""RunConfig: one run's whole configuration, built from experiment.toml plus overrides.

Keys are addressed with dots, as in `--set train.lr=0.1` (or just `lr=0.1` when the
leaf name is unique): `train.*` drives the trainer, `model.*` the model (`model.name`
picks it), `data.*` the dataset (`data.name` picks it), `task.*` the task.
Nothing here imports torch.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from dlcourse_tui.errors import UserError, suggest

OPTIMIZERS = ("sgd", "adam", "adamw")
MAX_SEED = 2**31 - 1  # seeds are mixed with epoch numbers in 64-bit generators (and numpy takes 32 bits)
SCHEDULES = ("constant", "cosine", "onecycle")


@dataclass(frozen=True)
class TrainConfig:
    """How the trainer runs: length, batch, optimiser and schedule, seed and device."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "constant"
    label_smoothing: float = 0.0  # cross-entropy against (1 - ε) one-hot + ε / classes
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # CPU threads for torch; 0: 1 for small models, all cores for large ones
    log_every: int = 10  # steps between metric read-backs (and StepEnded events)
    eval_every: int = 1  # epochs between evaluations on the validation split


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides what a run computes."""

    lesson: str
    task: str
    train: TrainConfig
    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
    data: str = "shapes"
    data_args: dict[str, Any] = field(default_factory=dict)
    task_args: dict[str, Any] = field(default_factory=dict)
    variant: str = ""
    upstream: dict[str, str] = field(default_factory=dict)  # runs it builds on: need name -> run id (engine/upstream.py)
    explicit: frozenset[str] = field(default=frozenset(), compare=False)  # dotted keys the user set by hand

    def to_dict(self) -> dict[str, Any]:
        """The nested form stored as config.json."""
        return {
            "lesson": self.lesson,
            "task": self.task,
            "variant": self.variant,
            "train": asdict(self.train),
            "model": {"name": self.model, **self.model_args},
            "data": {"name": self.data, **self.data_args},
            "task_args": dict(self.task_args),
            **({"upstream": dict(self.upstream)} if self.upstream else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """Inverse of to_dict (reads config.json of a past run)."""
        model = dict(d["model"])
        data = dict(d["data"])
        return cls(
            lesson=d["lesson"],
            task=d["task"],
            variant=d.get("variant", ""),
            train=TrainConfig(**d["train"]),
            model=model.pop("name"),
            model_args=model,
            data=data.pop("name"),
            data_args=data,
            task_args=dict(d.get("task_args", {})),
            upstream=dict(d.get("upstream", {})),
        )

    def flat(self) -> dict[str, Any]:
        """Dotted keys to values, for comparing runs."""
        return flatten(self.to_dict())


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} -> {"train.lr": 1}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set tree["a"]["b"] = value for path "a.b", creating tables on the way."""
    *parents, leaf = path.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A copy of base with over's values laid on top, table by table."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Knob:
    """A value a learner may turn, with its type and allowed range."""

    key: str  # dotted path, e.g. "train.lr"
    type: str  # "int" | "float" | "bool" | "str"
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    log: bool = False  # a log scale suits it (learning rates)

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[-1]

    def range_text(self) -> str:
        """The allowed values in words: '1e-05 … 10', 'sgd | adam', 'true | false'."""
        if self.choices:
            return " | ".join(self.choices)
        if self.type == "bool":
            return "true | false"
        lo = "-∞" if self.min is None else number_text(self.min)
        hi = "∞" if self.max is None else number_text(self.max)
        return f"{lo} … {hi}"

    def parse(self, text: str | Any) -> Any:
        """The typed value of `text`, or UserError naming the knob, the value and the range."""
        value = coerce(self.key, self.type, text)
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        """UserError when value is outside the knob's range or choices."""
        if self.choices and value not in self.choices:
            raise UserError(f"{self.key}={value!r} is not allowed: choose one of {self.range_text()}.")
        if self.type in ("int", "float"):
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise UserError(f"{self.key}={number_text(value)} is out of range: allowed {self.range_text()}.")
        if self.type == "ints":
            for v in value:
                if (self.min is not None and v < self.min) or (self.max is not None and v > self.max):
                    raise UserError(f"{self.key}={','.join(map(str, value))}: {v} is out of range; "
                                    f"each entry must be {self.range_text()}.")


def number_text(value: float) -> str:
    """A number as a learner wrote it: 100000000 (not 1e+08), 0.001, 1e-05, 2.5."""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e16):
        return str(int(value))
    return f"{value:g}"


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def type_of(value: Any) -> str:
    """The knob type name of a TOML default value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return "ints"
    return "str"


def coerce(key: str, kind: str, text: Any) -> Any:
    """Turn a --set string (or a TOML value) into `kind`, or say why it cannot be."""
    if not isinstance(text, str):
        if kind == "float" and isinstance(text, (int, float)) and not isinstance(text, bool):
            return float(text)
        if type_of(text) == kind:
            return text
        text = str(text)
    s = text.strip()
    if kind == "ints":
        return _ints(key, s)
    try:
        if kind == "int":
            return int(s)
        if kind == "float":
            value = float(s)
            if not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        article = "an integer" if kind == "int" else "a number"
        example = "10" if kind == "int" else "0.01"
        raise UserError(f"{key}={text!r} is not {article}: give {article}, e.g. {key}={example}.") from None
    if kind == "bool":
        if s.lower() in _TRUE:
            return True
        if s.lower() in _FALSE:
            return False
        raise UserError(f"{key}={text!r} is not true or false: give {key}=true or {key}=false.")
    return s


def _ints(key: str, text: str) -> list[int]:
    """'16,32', '[16, 32]' or '16 32' as [16, 32]; UserError otherwise."""
    parts = [p for p in re.split(r"[\s,]+", text.strip().strip("[]()")) if p]
    try:
        if not parts:
            raise ValueError
        return [int(p) for p in parts]
    except ValueError:
        raise UserError(f"{key}={text!r} is not a list of integers: give them separated by commas, "
                        f"e.g. {key}=16,32.") from None


def resolve_key(key: str, known: list[str]) -> str:
    """A full dotted key for `key` (itself, or the one key whose leaf name it is)."""
    if key in known:
        return key
    matches = [k for k in known if k.rsplit(".", 1)[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UserError(f"--set {key}: the name is ambiguous; write one of {', '.join(matches)}.")
    leaves = sorted({k.rsplit(".", 1)[-1] for k in known} | set(known))
    raise UserError(f"--set {key}: no such setting in this experiment.{suggest(key, leaves)} See the knobs with: dlc lesson show LESSON")


def build_config(
    lesson_id: str,
    experiment: dict[str, Any],
    knobs: dict[str, Knob],
    *,
    variant: str = "",
    sets: list[str] | tuple[str, ...] = (),
    overrides: dict[str, Any] | None = None,
    clear: tuple[str, ...] = (),
) -> RunConfig:
    """The RunConfig of an experiment after its variant, `--set key=value` strings and
    typed CLI overrides (dotted keys such as "train.epochs"), checked against the knobs;
    `clear` drops keys the user did not set (a real dataset's size: all of it)."""
    tree: dict[str, Any] = {
        "train": experiment.get("train", {}),
        "model": experiment.get("model", {}),
        "data": experiment.get("data", {}),
        "task": experiment.get("task_args", {}),
    }
    variants = experiment.get("variants", {})
    if variant:
        if variant not in variants:
            names = ", ".join(variants) or "none"
            raise UserError(f"--variant {variant}: this lesson has no such variant (it has: {names}).{suggest(variant, variants)}")
        body = {k: v for k, v in variants[variant].items() if k != "description"}
        tree = deep_merge(tree, body)
    defaults = flatten(tree)
    for f in fields(TrainConfig):  # every trainer setting may be set, even if the toml omits it
        defaults.setdefault(f"train.{f.name}", getattr(TrainConfig, f.name))
    known = sorted(set(defaults) | set(knobs))  # a knob may have no default: the model's or dataset's own
    chosen: dict[str, Any] = {}
    for item in sets:
        if "=" not in item:
            raise UserError(f"--set {item}: write it as key=value, e.g. --set lr=0.01.")
        raw_key, raw_value = item.split("=", 1)
        key = resolve_key(raw_key.strip(), known)
        knob = knobs.get(key)
        chosen[key] = knob.parse(raw_value) if knob else coerce(key, type_of(defaults[key]), raw_value)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        knob = knobs.get(key)
        if knob:
            knob.check(value)
        chosen[key] = value
    values = {k: v for k, v in {**defaults, **chosen}.items() if k not in clear or k in chosen}
    for key, value in values.items():
        knob = knobs.get(key)
        if knob and key not in chosen:
            knob.check(coerce(key, knob.type, value))
    train = _train_config({k[6:]: v for k, v in values.items() if k.startswith("train.")})
    model_args = {k[6:]: v for k, v in values.items() if k.startswith("model.")}
    data_args = {k[5:]: v for k, v in values.items() if k.startswith("data.")}
    task_args = {k[5:]: v for k, v in values.items() if k.startswith("task.")}
    if "name" not in model_args:
        raise UserError(f"lesson {lesson_id}: its experiment.toml names no model ([model] name = ...).")
    offered = experiment.get("models", [experiment.get("model", {}).get("name")])
    if model_args["name"] not in offered:
        raise UserError(f"lesson {lesson_id} offers the models {', '.join(offered)}, not {model_args['name']!r}.")
    return RunConfig(
        lesson=lesson_id,
        task=experiment["task"],
        variant=variant,
        train=train,
        model=model_args.pop("name"),
        model_args=model_args,
        data=data_args.pop("name", "shapes"),
        data_args=data_args,
        task_args=task_args,
        explicit=frozenset(chosen),
    )


def _train_config(values: dict[str, Any]) -> TrainConfig:
    """A TrainConfig with sane values, or UserError naming the bad one."""
    cfg = TrainConfig(**{k: coerce(f"train.{k}", type_of(getattr(TrainConfig, k)), v) for k, v in values.items()})
    if not 0 <= cfg.seed <= MAX_SEED:
        raise UserError(f"seed={cfg.seed} is out of range: give a whole number from 0 to {MAX_SEED}, e.g. --seed 1.")
    if cfg.epochs < 1:
        raise UserError(f"epochs={cfg.epochs} is not a run: give at least 1 epoch, e.g. --epochs 5.")
    if cfg.batch_size < 1:
        raise UserError(f"batch_size={cfg.batch_size}: a batch needs at least 1 example, e.g. --set batch_size=64.")
    if cfg.lr <= 0:
        raise UserError(f"lr={cfg.lr:g}: the learning rate must be positive, e.g. --set lr=0.01.")
    if cfg.weight_decay < 0:
        raise UserError(f"weight_decay={cfg.weight_decay:g}: weight decay cannot be negative; use 0 to switch it off.")
    if cfg.optimizer not in OPTIMIZERS:
        raise UserError(f"optimizer={cfg.optimizer!r} is unknown: choose one of {', '.join(OPTIMIZERS)}.")
    if cfg.schedule not in SCHEDULES:
        raise UserError(f"schedule={cfg.schedule!r} is unknown: choose one of {', '.join(SCHEDULES)}.")
    if not 0.0 <= cfg.label_smoothing < 1.0:
        raise UserError(f"label_smoothing={cfg.label_smoothing:g}: give a value in [0, 1), e.g. 0.1.")
    if cfg.threads < 0:
        raise UserError(f"threads={cfg.threads}: give 0 (automatic) or a number of CPU threads.")
    if cfg.log_every < 1 or cfg.eval_every < 1:
        raise UserError("log_every and eval_every must be at least 1.")
    return cfg
