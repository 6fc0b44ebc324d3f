"""--use softmax_ce: the classifier's loss is the learner's forward, and its backward pass the
learner's dscores (an autograd Function), in place of F.cross_entropy."""

from typing import Any

import torch
from torch import Tensor


def plug(mine: Any, config: Any) -> dict[str, Any]:
    """What to replace for the run: the classify task's loss_and_correct."""
    from dlcourse_tui.errors import UserError
    from dlcourse_tui.tasks import classify

    if config.train.label_smoothing:
        raise UserError("--use softmax_ce computes the plain cross-entropy: drop label_smoothing.")
    builtin = classify.loss_and_correct
    fn = mine.softmax_cross_entropy

    class LearnerCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, scores: Tensor, y: Tensor) -> Tensor:
            loss, dscores = fn(scores.detach(), y)  # (), (N, C)
            ctx.save_for_backward(dscores)
            return torch.as_tensor(loss, dtype=scores.dtype)

        @staticmethod
        def backward(ctx: Any, dloss: Tensor) -> tuple[Tensor, None]:
            (dscores,) = ctx.saved_tensors
            return dscores * dloss, None

    def loss_and_correct(logits: Tensor, y: Tensor, label_smoothing: float = 0.0) -> tuple[Tensor, Tensor]:
        if logits.shape[-1] == 1 or label_smoothing:
            return builtin(logits, y, label_smoothing)
        return LearnerCrossEntropy.apply(logits.float(), y), logits.argmax(dim=1) == y

    return {"dlcourse_tui.tasks.classify:loss_and_correct": loss_and_correct}
