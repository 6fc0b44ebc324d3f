"""--use dropout: every nn.Dropout built for the run calls the learner's dropout, with a
generator of its own seeded from the run's seed."""

from typing import Any

import torch
from torch import Tensor, nn


def plug(mine: Any, config: Any) -> dict[str, Any]:
    """What to replace for the run: torch.nn.Dropout, while the run's model is built and trains."""
    from dlcourse_tui.errors import UserError

    if not config.model_args.get("dropout"):
        raise UserError("--use dropout replaces the model's dropout, which is off in this run: "
                        "add --set dropout=0.3 (or another rate).")
    fn, seed = mine.dropout, config.train.seed

    class Dropout(nn.Dropout):
        """nn.Dropout with the learner's inverted dropout."""

        def forward(self, x: Tensor) -> Tensor:
            g = getattr(self, "_dlc_generator", None)
            if g is None or g.device != x.device:
                g = self._dlc_generator = torch.Generator(device=x.device).manual_seed(seed)
            return fn(x, self.p, self.training, g)

    return {"torch.nn:Dropout": Dropout}
