"""The Task interface every kind of learning implements (see the package docstring)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from dlcourse_tui.data.base import Dataset
from dlcourse_tui.engine.config import RunConfig
from dlcourse_tui.engine.launch import DistContext
from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.engine.optim import make_optimizer, make_scheduler
from dlcourse_tui.engine.upstream import Upstream
from dlcourse_tui.errors import UserError

Batch = Any  # whatever a task's `batches` yields and its `train_step` takes


class Task(ABC):
    """One kind of learning: builds its models and optimisers, steps, evaluates, draws."""

    supports_distributed = False  # True once batches are sharded and modules wrapped in DDP

    def __init__(self, config: RunConfig, data: Dataset, device: torch.device, dist: DistContext | None = None) -> None:
        self.config = config
        self.data = data
        self.device = device
        self.dist = dist
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.upstream: dict[str, Upstream] = {}  # the earlier runs it builds on, loaded before build()

    # -- set-up ------------------------------------------------------------------------
    @abstractmethod
    def build(self) -> None:
        """Create modules, optimisers and schedulers on self.device."""

    @abstractmethod
    def steps_per_epoch(self) -> int:
        """Training steps in one epoch."""

    def use_model(self, model: nn.Module) -> None:
        """The common case: one model, one optimiser and (if configured) one schedule."""
        train = self.config.train
        self.model = model
        self.modules = {"model": model}
        self.optimizer = make_optimizer([model], train)
        self.optimizers = {"model": self.optimizer}
        self.scheduler = make_scheduler(self.optimizer, train, self.steps_per_epoch() * train.epochs)
        self.schedulers = {"model": self.scheduler} if self.scheduler else {}

    def init_from_upstream(self, name: str, module: nn.Module, key: str = "model") -> bool:
        """Load module `key` of the earlier run this task builds on as `name` into `module`
        (before its optimiser sees it); False when it builds on no such run. UserError when
        that run's model does not fit this one (other sizes, another architecture)."""
        upstream = self.upstream.get(name)
        if upstream is None:
            return False
        try:
            module.load_state_dict(upstream.module_state(key))
        except RuntimeError as e:
            first = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e))
            raise UserError(f"run {upstream.run_id} ({name}) has a model that does not fit this one: {first.rstrip('.')}. "
                            "Name a run with the same model settings (--from), or train one.") from None
        return True

    # -- training ----------------------------------------------------------------------
    @abstractmethod
    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The training batches of `epoch` from batch index `start` on, deterministic in
        (seed, epoch) so that a resumed run sees the same batches."""

    @abstractmethod
    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        """One update (backward and optimiser steps included). Returns detached 0-d
        tensors, left on the device; "loss" must be among them."""

    def update(self, loss: Tensor, name: str = "model") -> None:
        """One step of optimiser `name` on `loss`: clear the gradients, backpropagate, step,
        and advance its schedule if it has one."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if name in self.schedulers:
            self.schedulers[name].step()

    def examples_in(self, batch: Batch) -> int:
        """How many examples `batch` holds: the weight of its metrics in the logged means."""
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        return len(first)

    def train(self, mode: bool = True) -> None:
        """Put every module in training (or evaluation) mode."""
        for m in self.modules.values():
            m.train(mode)

    # -- evaluation and pictures -------------------------------------------------------
    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Metrics on the validation split, names prefixed "val_"."""

    def pictures(self, epoch: int, final: bool) -> list[PictureReady]:
        """Pictures to show after `epoch` (final: after the last one)."""
        return []

    def tables(self) -> list[TableReady]:
        """Tables to show once before training starts."""
        return []

    # -- state -------------------------------------------------------------------------
    def num_params(self) -> int:
        return sum(p.numel() for m in self.modules.values() for p in m.parameters())

    def state_dict(self) -> dict[str, Any]:
        """Everything of the task's that a resumed run needs."""
        return {
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])


class VocabularyTask(Task):
    """A task with a word vocabulary (self.vocab, built from its run's captions): saved with
    its checkpoint, and a resume on another vocabulary refused."""

    vocab: Any  # a data.vocab.Vocabulary, made in build()

    def use_text_model(self, length: int) -> None:
        """The run's model for this vocabulary, with positions for at least `length` tokens, as
        the task's one model (use_model); settings the learner set explicitly are checked strictly."""
        from dlcourse_tui.models.registry import create_model
        from dlcourse_tui.tasks.dense import batched_updates

        cfg = self.config
        args = {**cfg.model_args, "max_length": max(int(cfg.model_args.get("max_length", 40)), length)}
        self.use_model(create_model(cfg.model, input_shape=self.data.input_shape, num_classes=len(self.vocab), args=args,
                                    strict={k[6:] for k in cfg.explicit if k.startswith("model.")}).to(self.device))
        batched_updates(self.optimizer)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "vocab": self.vocab.to_list()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("vocab")
        if saved is not None and list(saved) != self.vocab.to_list():
            raise UserError("the checkpoint's vocabulary differs from the one built from this run's captions; "
                            "resume it with the data settings it was started with.")
        super().load_state_dict(state)
