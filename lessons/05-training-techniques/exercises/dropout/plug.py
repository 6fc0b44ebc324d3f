"""--use dropout: every nn.Dropout built for the run calls the learner's dropout, drawing
from the device's default generator: the run's own random stream, which its checkpoint
keeps, so a resumed run draws the masks an uninterrupted one draws. (The masks are not the
built-in's: nn.Dropout samples them with its own kernel, so a run with --use dropout
follows the built-in's curve closely, not bitwise.)"""

from typing import Any

import torch
from torch import Tensor, nn


def plug(mine: Any, config: Any) -> dict[str, Any]:
    """What to replace for the run: torch.nn.Dropout, while the run's model is built and trains."""
    from dlcourse_tui.errors import UserError

    if not config.model_args.get("dropout"):
        raise UserError("--use dropout replaces the model's dropout, which is off in this run: "
                        "add --set dropout=0.3 (or another rate).")
    fn = mine.dropout

    class Dropout(nn.Dropout):
        """nn.Dropout with the learner's inverted dropout."""

        def forward(self, x: Tensor) -> Tensor:
            if x.device.type == "cuda":
                g = torch.cuda.default_generators[x.device.index or 0]
            else:
                g = torch.default_generator
            return fn(x, self.p, self.training, g)

    return {"torch.nn:Dropout": Dropout}
