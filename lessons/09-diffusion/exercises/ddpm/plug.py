"""--use ddpm: the diffusion schedule's q_sample (Algorithm 1 trains on it) and every step
of Algorithm 2's sampling loop are the learner's."""

from typing import Any

import numpy as np
import torch
from torch import Tensor


def plug(mine: Any, config: Any) -> dict[str, Any]:
    """What to replace for the run: DDPMSchedule.q_sample and DDPMSchedule.p_sample_loop."""
    q_fn, step_fn = mine.q_sample, mine.p_sample_step

    def tables(self: Any, device: torch.device) -> tuple[Tensor, Tensor]:
        """The schedule's β and ᾱ as float32 on `device`, made once per device."""
        cache = self.__dict__.setdefault("_dlc_tables", {})
        if device not in cache:
            cache[device] = (self.betas.float().to(device), self.alpha_bars.float().to(device))
        return cache[device]

    def q_sample(self: Any, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        return q_fn(x0, t, eps, tables(self, x0.device)[1])  # (B, C, H, W)

    @torch.no_grad()
    def p_sample_loop(self: Any, eps_model: Any, shape: tuple[int, ...], *, generator: torch.Generator,
                      device: Any = "cpu", keep: int = 0, snapshots: int = 0) -> tuple[Tensor, list[Tensor]]:
        """DDPMSchedule.p_sample_loop with the learner's step: the same noise, drawn in the same order."""
        betas, alpha_bars = tables(self, torch.device(device))
        x = torch.randn(*shape, generator=generator).to(device)  # x_T
        marks = set(np.linspace(self.T, 0, snapshots).round().astype(int).tolist()) if snapshots else set()
        frames = [x[:keep].clone()] if self.T in marks else []
        for i in range(self.T - 1, -1, -1):  # t = i + 1 = T … 1
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)
            eps = eps_model(x, t)  # (B, C, H, W)
            z = torch.randn(*shape, generator=generator).to(device) if i > 0 else torch.zeros_like(x)
            x = step_fn(x, i, eps, betas, alpha_bars, z)  # x_{t−1}
            if i in marks:
                frames.append(x[:keep].clone())
        return x, frames

    return {"dlcourse_tui.tasks.diffusion:DDPMSchedule.q_sample": q_sample,
            "dlcourse_tui.tasks.diffusion:DDPMSchedule.p_sample_loop": p_sample_loop}
