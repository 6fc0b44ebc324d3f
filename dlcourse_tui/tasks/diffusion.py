"""Denoising diffusion (DDPM; Ho, Jain & Abbeel 2020), written as the paper's two
algorithms.

Forward process, a fixed Markov chain that adds Gaussian noise with a linear schedule
β_1 … β_T:   q(x_t | x_{t−1}) = N(√(1 − β_t) x_{t−1}, β_t I), and in closed form
             q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I),  α_t = 1 − β_t, ᾱ_t = Π_{s≤t} α_s.

Algorithm 1 (training): x_0 ~ data, t ~ Uniform{1, …, T}, ε ~ N(0, I); a gradient step
on ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖².

Algorithm 2 (sampling): x_T ~ N(0, I); for t = T, …, 1: z ~ N(0, I) if t > 1 else 0,
x_{t−1} = 1/√α_t · (x_t − (1 − α_t)/√(1 − ᾱ_t) · ε_θ(x_t, t)) + σ_t z with σ_t² = β_t;
return x_0.

Code indexes steps from 0: index i stands for t = i + 1 (the network sees i).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.engine.events import PictureReady
from dlcourse_tui.engine.optim import make_optimizer, make_scheduler
from dlcourse_tui.errors import UserError
from dlcourse_tui.tasks.generate import EVAL_BATCH, GenerativeTask, image_grid

EpsModel = Callable[[Tensor, Tensor], Tensor]  # ε_θ(x_t, step index (B,)) -> (B, C, H, W)


class DDPMSchedule:
    """The linear β schedule and the two procedures that use it.

    β runs linearly from 1e-4 to 0.02 for T = 1000 (the paper). For another T both
    ends are scaled by 1000 / T, so that the total noise, and ᾱ_T ≈ 0, stay about the same.
    """

    def __init__(self, timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 device: torch.device | str = "cpu") -> None:
        if timesteps < 2:
            raise UserError(f"timesteps={timesteps}: diffusion needs at least 2 steps.")
        scale = 1000.0 / timesteps
        self.T = timesteps
        self.betas = torch.linspace(beta_start * scale, min(beta_end * scale, 0.999), timesteps,
                                    dtype=torch.float64)  # (T,) β_1 … β_T
        self.alphas = 1 - self.betas  # (T,)
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)  # (T,) ᾱ_t
        as32 = lambda v: v.float().to(device)  # noqa: E731
        self.beta = as32(self.betas)
        self.sqrt_alpha = as32(self.alphas.sqrt())
        self.sqrt_ab = as32(self.alpha_bars.sqrt())
        self.sqrt_1m_ab = as32((1 - self.alpha_bars).sqrt())
        self.sigma = as32(self.betas.sqrt())  # σ_t = √β_t (the paper's first choice)

    @staticmethod
    def _at(v: Tensor, t: Tensor) -> Tensor:
        return v[t].view(-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)

    def q_sample(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, the closed form of q(x_t | x_0); t: (B,) indices."""
        return self._at(self.sqrt_ab, t) * x0 + self._at(self.sqrt_1m_ab, t) * eps  # (B, C, H, W)

    def q_step(self, x_prev: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """One step of the forward chain, x_t = √(1 − β_t) x_{t−1} + √β_t ε."""
        return self._at(self.sqrt_alpha, t) * x_prev + self._at(self.sigma, t) * eps

    def loss(self, eps_model: EpsModel, x0: Tensor) -> Tensor:
        """Algorithm 1's objective on one batch: t uniform, ε ~ N(0, I), ‖ε − ε_θ(x_t, t)‖² (mean)."""
        t = torch.randint(0, self.T, (x0.shape[0],), device=x0.device)  # (B,)
        eps = torch.randn_like(x0)
        return F.mse_loss(eps_model(self.q_sample(x0, t, eps), t), eps)

    @torch.no_grad()
    def p_sample_loop(self, eps_model: EpsModel, shape: tuple[int, ...], *, generator: torch.Generator,
                      device: torch.device | str = "cpu", keep: int = 0,
                      snapshots: int = 0) -> tuple[Tensor, list[Tensor]]:
        """Algorithm 2 from x_T ~ N(0, I) to x_0 (not clipped). With `snapshots` > 0, the
        first `keep` samples are also returned at that many evenly spaced t, x_T first."""
        x = torch.randn(*shape, generator=generator).to(device)  # x_T
        marks = set(np.linspace(self.T, 0, snapshots).round().astype(int).tolist()) if snapshots else set()
        frames = [x[:keep].clone()] if self.T in marks else []
        for i in range(self.T - 1, -1, -1):  # t = i + 1 = T … 1
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)
            eps = eps_model(x, t)
            mean = (x - self.beta[i] / self.sqrt_1m_ab[i] * eps) / self.sqrt_alpha[i]
            z = torch.randn(*shape, generator=generator).to(device) if i > 0 else torch.zeros_like(x)
            x = mean + self.sigma[i] * z  # x_{t−1}
            if i in marks:
                frames.append(x[:keep].clone())
        return x, frames


class EMA(nn.Module):
    """An exponential moving average of a model's weights, θ̄ ← d·θ̄ + (1 − d)·θ after each
    step, with d warming up as min(decay, (1 + n)/(10 + n)). The paper samples with such an
    average (d = 0.9999 over 800k steps); a run of a few hundred steps needs a shorter memory."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        n = int(self.updates)
        d = min(self.decay, (1 + n) / (10 + n))
        for avg, p in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(p, 1 - d)
        self.updates += 1


class DiffusionTask(GenerativeTask):
    """DDPM on images in [−1, 1] with a U-Net ε_θ; class-conditional when the model is."""

    def build(self) -> None:
        self.check_images()
        cfg = self.config
        args = cfg.task_args
        self.model = self.build_model()
        self.conditional = bool(getattr(self.model.cfg, "conditional", False))
        self.schedule = DDPMSchedule(int(args.get("timesteps", 1000)), device=self.device)
        self.quality_samples = int(args.get("quality_samples", 200))
        self.picture_samples = int(args.get("picture_samples", 20))
        decay = float(args.get("ema", 0.0))
        self.ema = EMA(self.model, decay) if decay > 0 else None
        self.modules = {"model": self.model, **({"ema": self.ema} if self.ema is not None else {})}
        self.optimizer = make_optimizer([self.model], cfg.train)
        self.optimizers = {"model": self.optimizer}
        self.scheduler = make_scheduler(self.optimizer, cfg.train, self.steps_per_epoch() * cfg.train.epochs)
        self.schedulers = {"model": self.scheduler} if self.scheduler else {}
        self.sample_seconds = 0.0

    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def eps_model(self, y: Tensor | None, net: nn.Module | None = None) -> EpsModel:
        """ε_θ(·, t) with the class labels y bound (ignored when the model is unconditional)."""
        net = net or self.model
        return lambda x, t: net(x, t, y if self.conditional else None)

    @property
    def sampler(self) -> nn.Module:
        """The weights evaluation and sampling use: the moving average when there is one."""
        return self.ema.model if self.ema is not None else self.model

    def train_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch
        loss = self.schedule.loss(self.eps_model(y), self.signed(x))  # Algorithm 1
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return {"loss": loss.detach()}

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        """Algorithm 1's loss on validation images with fixed t and ε; after the last epoch
        (or every task.quality_every epochs) also the judge's verdict on fresh samples."""
        net = self.sampler.eval()
        val, g = self.data.val, self.eval_generator()
        total = torch.zeros((), device=self.device)
        for i in range(0, len(val), EVAL_BATCH):
            x0 = self.signed(val.x[i:i + EVAL_BATCH])
            t = torch.randint(0, self.schedule.T, (len(x0),), generator=g).to(self.device)
            eps = self.randn(*x0.shape, generator=g)
            pred = net(self.schedule.q_sample(x0, t, eps), t, val.y[i:i + EVAL_BATCH] if self.conditional else None)
            total += (pred - eps).pow(2).mean(dim=(1, 2, 3)).sum()
        out = {"val_loss": total.item() / len(val)}
        self._final_samples = None
        if self.quality_due() and self.quality_samples > 0:
            samples, labels = self.sample(self.quality_samples, salt=1)
            self._final_samples = (samples, labels)
            score = self.judge().score(samples, labels if self.conditional else None)
            out.update({f"val_{k}": v for k, v in score.items()})
            out["val_judge_acc"] = self.judge().val_acc
        return out

    def labels(self, n: int) -> Tensor | None:
        return torch.arange(n, device=self.device) % self.data.num_classes if self.conditional else None

    @torch.inference_mode()
    def sample(self, n: int, salt: int = 0, keep: int = 0, snapshots: int = 0) -> tuple[Tensor, Tensor | None]:
        """n samples by Algorithm 2, in [0, 1]; labels 0, 1, 2, … when conditional."""
        net = self.sampler.eval()
        y = self.labels(n)
        t0 = time.perf_counter()
        x, frames = self.schedule.p_sample_loop(self.eps_model(y, net), (n, *self.data.input_shape),
                                                generator=self.eval_generator(salt), device=self.device,
                                                keep=keep, snapshots=snapshots)
        self.sample_seconds = time.perf_counter() - t0
        self._frames = frames
        return self.from_signed(x), y

    def pictures(self, epoch: int, final: bool) -> list[PictureReady]:
        cached = getattr(self, "_final_samples", None)  # the judge's samples, when evaluate drew them
        if cached is not None and len(cached[0]) >= self.picture_samples:
            samples = cached[0][:max(self.picture_samples, min(len(cached[0]), 10 * self.data.num_classes))]
        else:
            samples, _ = self.sample(self.picture_samples, salt=2)
        self.sample(4, salt=3, keep=4, snapshots=11)
        strip = self._strip(self._frames)
        what = "one row per class, columns 0 … 9 asked for" if self.conditional else "unconditional"
        return [
            PictureReady("forward", f"forward process q(x_t | x_0) of one image at t = 0 … {self.schedule.T} (closed form)",
                         epoch, self._forward_strip()),
            PictureReady("reverse", f"Algorithm 2 on 4 samples: x_T (left) → x_0 (right), {self.schedule.T} steps",
                         epoch, strip),
            PictureReady("samples", f"samples x_0 ({what})", epoch, self._grid(samples)),
        ]

    def _grid(self, samples: Tensor) -> np.ndarray:
        k = self.data.num_classes
        if self.conditional and len(samples) >= k:
            n = len(samples) // k * k  # sample i asked for class i mod k: show classes as rows
            rows = samples[:n].view(n // k, k, *samples.shape[1:]).transpose(0, 1).flatten(0, 1)
            return image_grid(rows, ncols=n // k)
        return image_grid(samples, ncols=10)

    def _strip(self, frames: list[Tensor]) -> np.ndarray:
        x = torch.stack([self.from_signed(f) for f in frames], dim=1)  # (keep, F, C, H, W)
        return image_grid(x.flatten(0, 1), ncols=len(frames))

    @torch.inference_mode()
    def _forward_strip(self, frames: int = 11) -> np.ndarray:
        x0 = self.signed(self.data.val.x[:1])  # (1, C, H, W)
        eps = self.randn(*x0.shape, generator=self.eval_generator(4))
        ts = np.linspace(0, self.schedule.T, frames).round().astype(int)
        cols = [x0 if t == 0 else self.schedule.q_sample(x0, torch.tensor([t - 1], device=self.device), eps) for t in ts]
        return image_grid(self.from_signed(torch.cat(cols)), ncols=frames)
