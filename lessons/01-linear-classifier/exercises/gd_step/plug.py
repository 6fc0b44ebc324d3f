"""--use gd_step: the run's SGD optimiser applies the learner's sgd_step to every parameter."""

from typing import Any

import torch


def plug(mine: Any, config: Any) -> dict[str, Any]:
    """What to replace for the run: the optimiser every task's use_model builds."""
    from dlcourse_tui.engine.optim import param_groups
    from dlcourse_tui.errors import UserError

    if config.train.optimizer != "sgd":
        raise UserError(f"--use gd_step is an SGD step, but this run's optimiser is {config.train.optimizer}: "
                        "add --set optimizer=sgd.")
    step_fn = mine.sgd_step

    class LearnerSGD(torch.optim.Optimizer):
        """SGD whose update is the learner's sgd_step (state: each parameter's velocity)."""

        def __init__(self, params: Any, lr: float, momentum: float) -> None:
            super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": 0.0})

        @torch.no_grad()
        def step(self, closure: Any = None) -> None:
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    v = state.get("velocity", torch.zeros_like(p))
                    w_new, v_new = step_fn(p.detach().clone(), p.grad.clone(), v, group["lr"], group["momentum"],
                                           group["weight_decay"])
                    p.copy_(w_new)
                    state["velocity"] = v_new.detach()

    def make_optimizer(modules: Any, cfg: Any) -> torch.optim.Optimizer:
        return LearnerSGD(param_groups(modules, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum)

    return {"dlcourse_tui.tasks.base:make_optimizer": make_optimizer}
