"""Optimisers and learning-rate schedules from a TrainConfig."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from dlcourse_tui.engine.config import TrainConfig


def param_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices and kernels only, not on biases and norm scales
    (one group when there is no decay: each group costs an optimiser pass per step)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    if weight_decay == 0:
        return [{"params": params, "weight_decay": 0.0}]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def make_optimizer(modules: Iterable[nn.Module], cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW as cfg says."""
    groups = param_groups(modules, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-step schedule, or None for a constant learning rate."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total_steps, 1))
    return None


def restart_schedule(scheduler: torch.optim.lr_scheduler.LRScheduler, total_steps: int) -> None:
    """Start `scheduler` over as a new schedule of `total_steps` steps, in place (the task
    holds it): a warm restart, as SGDR does, for a finished run that is given more epochs.

    Its fresh state comes from a scheduler of the same kind built on the same optimiser
    (which also sets the optimiser's learning rates to the new schedule's first value).
    """
    opt = scheduler.optimizer
    total_steps = max(total_steps, 1)
    if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
        fresh = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["max_lr"] for g in opt.param_groups],
                                                    total_steps=total_steps)
    elif isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"]
        fresh = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    else:
        raise TypeError(f"cannot restart a {type(scheduler).__name__}")
    scheduler.load_state_dict(fresh.state_dict())
