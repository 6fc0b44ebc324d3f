"""The model registry: `@register_model` on a module class, `list_models`, `create_model`.

Each entry carries the task it serves, the kind of input it takes, an example input
shape (used by the test that runs every model forward and backward) and a one-line
description. Model families register on import; models/catalog.py lists them (torch-free).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from dlcourse_tui.errors import UserError, suggest
from dlcourse_tui.models.catalog import MODELS, family_modules


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows of a model before building it."""

    name: str
    task: str  # the task module that trains it, e.g. "classify"
    inputs: tuple[str, ...]  # kinds of data it takes: "image", "points"
    example_shape: tuple[int, ...]  # one input's shape for smoke tests, e.g. (3, 32, 32)
    description: str
    cls: type[nn.Module]
    config_cls: type

    def arg_names(self) -> set[str]:
        """The config fields a lesson may set (those beyond input_shape and num_classes)."""
        return {f.name for f in dataclasses.fields(self.config_cls)} - {"input_shape", "num_classes"}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, task: str, inputs: tuple[str, ...], example_shape: tuple[int, ...], description: str
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: the class takes one argument, an instance of its `Config` dataclass."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        if MODELS.get(name, (None,))[0] != task:
            raise ValueError(f"model {name!r} ({task}) is not listed with that task in models/catalog.py")
        _REGISTRY[name] = ModelEntry(name, task, inputs, example_shape, description, cls, cls.Config)  # type: ignore[attr-defined]
        return cls

    return deco


def _load() -> dict[str, ModelEntry]:
    for module in family_modules():
        importlib.import_module(module)
    return _REGISTRY


def list_models(pattern: str = "*", *, task: str | None = None) -> list[ModelEntry]:
    """Registered models whose name matches the fnmatch pattern (and task, if given)."""
    return [e for n, e in sorted(_load().items()) if fnmatch.fnmatch(n, pattern) and (task is None or e.task == task)]


def get_entry(name: str) -> ModelEntry:
    """The entry for `name`, or UserError suggesting close names."""
    reg = _load()
    if name not in reg:
        raise UserError(f"no model {name!r}.{suggest(name, reg)} List them with: dlc models")
    return reg[name]


def create_model(name: str, *, input_shape: tuple[int, ...], num_classes: int, args: dict[str, Any] | None = None,
                 strict: set[str] = frozenset()) -> nn.Module:
    """Build model `name` for inputs of `input_shape`; `args` not in its config are ignored
    unless listed in `strict` (keys the user set by hand), which gives a UserError."""
    entry = get_entry(name)
    accepted = entry.arg_names()
    args = dict(args or {})
    for key in strict:
        if key in args and key not in accepted:
            raise UserError(f"model {name} has no setting {key!r}; it takes: {', '.join(sorted(accepted)) or 'none'}.")
    fields = {f.name for f in dataclasses.fields(entry.config_cls)}
    kwargs = {k: v for k, v in args.items() if k in accepted}
    if "input_shape" in fields:
        kwargs["input_shape"] = tuple(input_shape)
    if "num_classes" in fields:
        kwargs["num_classes"] = num_classes
    try:
        config = entry.config_cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UserError(f"model {name}: {e}") from None
    return entry.cls(config)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (trainable ones only, if asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
