"""--use batch_norm: every nn.BatchNorm2d built for the run is one whose forward and backward
are the learner's (an autograd Function), with the same parameters and buffers."""

from typing import Any

import torch
from torch import Tensor, nn


def plug(mine: Any, config: Any) -> dict[str, Any]:
    """What to replace for the run: torch.nn.BatchNorm2d, while the run's model is built and trains."""
    from dlcourse_tui.errors import UserError

    if not config.model_args.get("batch_norm"):
        raise UserError("--use batch_norm replaces the model's batch norm layers, and this run has none: "
                        "add --set batch_norm=true.")
    forward_fn, backward_fn = mine.batch_norm_forward, mine.batch_norm_backward

    class LearnerBatchNorm(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Tensor, gamma: Tensor, beta: Tensor, rm: Tensor, rv: Tensor, training: bool,
                    momentum: float, eps: float) -> Tensor:
            y, cache = forward_fn(x, gamma, beta, rm, rv, training, momentum, eps)
            ctx.cache = cache
            return y

        @staticmethod
        def backward(ctx: Any, dout: Tensor) -> tuple:
            dx, dgamma, dbeta = backward_fn(dout.contiguous(), ctx.cache)
            return dx, dgamma, dbeta, None, None, None, None, None

    class BatchNorm2d(nn.BatchNorm2d):
        """nn.BatchNorm2d with the learner's batch_norm_forward and batch_norm_backward."""

        def forward(self, x: Tensor) -> Tensor:
            if self.training:
                self.num_batches_tracked += 1
            return LearnerBatchNorm.apply(x, self.weight, self.bias, self.running_mean, self.running_var,
                                          self.training, self.momentum, self.eps)  # (N, C, H, W)

    return {"torch.nn:BatchNorm2d": BatchNorm2d}
