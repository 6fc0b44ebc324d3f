"""--use mlp_backward: MLP.manual_gradients, which the lesson's gradient-check table compares
with autograd, is the learner's mlp_backward."""

from typing import Any

import torch


def plug(mine: Any, config: Any) -> dict[str, Any]:
    """What to replace for the run: the MLP's hand-written backward."""
    from dlcourse_tui.errors import UserError

    if config.model != "mlp":
        raise UserError(f"--use mlp_backward is the MLP's backward pass; this run trains {config.model}: "
                        "drop --model (or use --model mlp).")
    fn = mine.mlp_backward

    @torch.no_grad()
    def manual_gradients(self: Any, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        params = {k: p.detach() for k, p in self.named_parameters()}
        return fn(x.flatten(1), y, params, self.cfg.activation)

    return {"dlcourse_tui.models.mlp:MLP.manual_gradients": manual_gradients}
