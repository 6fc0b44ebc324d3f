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

Extension, DDIM (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models"): a
non-Markovian forward process with the same marginals q(x_t | x_0), hence the same
training objective and the same trained ε_θ, whose reverse step may jump over steps.
On a sub-sequence τ_S > … > τ_1 of {T, …, 1}, with t = τ_i, s = τ_{i−1} (ᾱ_0 = 1),
equation 12 (the paper writes α for DDPM's ᾱ):

    x̂_0 = (x_t − √(1 − ᾱ_t) · ε_θ(x_t, t)) / √ᾱ_t                     (the predicted x_0)
    x_s = √ᾱ_s · x̂_0 + √(1 − ᾱ_s − σ_t²) · ε_θ(x_t, t) + σ_t z,       z ~ N(0, I)
    σ_t(η)² = η² · (1 − ᾱ_s)/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_s)                 (equation 16)

η = 0 is deterministic (x_T fixes x_0); η = 1 with every step (S = T) is DDPM's
reverse process with σ_t² = β̃_t, the variance of the true posterior q(x_{t−1} | x_t, x_0).

Code indexes steps from 0: index i stands for t = i + 1 (the network sees i).

Label dropout (task.label_dropout = p, with model.null_class): each training label is
replaced by the null class ∅ with probability p, as classifier-free guidance trains
(Ho & Salimans 2022), so that one network learns ε_θ(x_t, t, y) and ε_θ(x_t, t, ∅).
At p = 0 (the default) nothing is drawn and the run is the plain conditional DDPM.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.engine.events import PictureReady
from dlcourse_tui.engine.optim import make_optimizer, make_scheduler
from dlcourse_tui.errors import UserError
from dlcourse_tui.tasks.generate import EMA, EVAL_BATCH, GenerativeTask, image_grid

EpsModel = Callable[[Tensor, Tensor], Tensor]  # ε_θ(x_t, step index (B,)) -> (B, C, H, W)
SAMPLERS = ("ddpm", "ddim")  # Algorithm 2 over all T steps; DDIM (the extension) over S of them


class DDPMSchedule:
    """The linear β schedule and the procedures that use it: Algorithms 1 and 2, and DDIM.

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

    # ------------------------------------------------------------------ DDIM (the extension)

    def ddim_timesteps(self, steps: int) -> list[int]:
        """τ: `steps` step indices spread evenly from T − 1 (t = T) down to 0 (t = 1), in the
        order sampling visits them; steps = T gives every step, steps = 1 a single jump."""
        if not 1 <= steps <= self.T:
            raise UserError(f"sample_steps={steps}: DDIM samples over a sub-sequence of the T = {self.T} "
                            f"training steps, so it needs 1 ≤ sample_steps ≤ {self.T}; "
                            f"try --set sample_steps={min(20, self.T)} (or raise timesteps).")
        return np.linspace(self.T - 1, 0, steps).round().astype(int).tolist()

    def ddim_sigma(self, i: int, j: int, eta: float) -> float:
        """σ_t(η) of equation 16 for the jump from index i (t) to index j (s; −1 for x_0, ᾱ = 1)."""
        ab_t = self.alpha_bars[i].item()
        ab_s = self.alpha_bars[j].item() if j >= 0 else 1.0
        return eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)) ** 0.5

    def ddim_step(self, x: Tensor, eps: Tensor, i: int, j: int, eta: float, z: Tensor | None = None) -> Tensor:
        """Equation 12: x_s from x_t and ε_θ(x_t, t), for indices i (t) → j (s; −1 for x_0).
        Without z (or with η = 0) the step adds no noise."""
        ab_t = self.alpha_bars[i].item()
        ab_s = self.alpha_bars[j].item() if j >= 0 else 1.0
        sigma = self.ddim_sigma(i, j, eta)
        x0_hat = (x - (1 - ab_t) ** 0.5 * eps) / ab_t ** 0.5  # (B, C, H, W) the predicted x_0
        x_s = ab_s ** 0.5 * x0_hat + max(1 - ab_s - sigma ** 2, 0.0) ** 0.5 * eps  # (B, C, H, W)
        if z is not None and sigma > 0:
            x_s = x_s + sigma * z
        return x_s

    @torch.no_grad()
    def ddim_sample_loop(self, eps_model: EpsModel, shape: tuple[int, ...], *, steps: int, eta: float = 0.0,
                         generator: torch.Generator, device: torch.device | str = "cpu", keep: int = 0,
                         snapshots: int = 0) -> tuple[Tensor, list[Tensor]]:
        """DDIM from x_T ~ N(0, I) to x_0 in `steps` network calls (not clipped); `keep` and
        `snapshots` as in p_sample_loop, spread over the steps taken."""
        taus = self.ddim_timesteps(steps)  # [T − 1, …, 0]: indices of τ_S … τ_1
        x = torch.randn(*shape, generator=generator).to(device)  # x_T
        marks = set(np.linspace(steps, 0, snapshots).round().astype(int).tolist()) if snapshots else set()
        frames = [x[:keep].clone()] if steps in marks else []
        for k, i in enumerate(taus):
            j = taus[k + 1] if k + 1 < steps else -1  # the next index visited; −1: x_0
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)  # (B,)
            eps = eps_model(x, t)  # (B, C, H, W)
            z = torch.randn(*shape, generator=generator).to(device) if eta > 0 and j >= 0 else None
            x = self.ddim_step(x, eps, i, j, eta, z)  # x_s
            if steps - 1 - k in marks:  # steps left to take
                frames.append(x[:keep].clone())
        return x, frames


class DiffusionTask(GenerativeTask):
    """DDPM on images in [−1, 1] with a U-Net ε_θ; class-conditional when the model is."""

    def build(self) -> None:
        self.check_images()
        cfg = self.config
        args = cfg.task_args
        self.model = self.build_model()
        self.conditional = bool(getattr(self.model.cfg, "conditional", False))
        self.null_label = self.data.num_classes  # the index of ∅ when the model has a null class
        self.label_dropout = float(args.get("label_dropout", 0.0))
        if not 0.0 <= self.label_dropout < 1.0:
            raise UserError(f"task.label_dropout={self.label_dropout:g}: the share of labels replaced by the null class "
                            "must lie in 0 … 1 (below 1); e.g. --set label_dropout=0.1.")
        if self.label_dropout > 0 and not getattr(self.model.cfg, "null_class", False):
            raise UserError(f"task.label_dropout={self.label_dropout:g} replaces labels by the null class, which this "
                            "model lacks; add --set null_class=true (and keep conditional=true).")
        self.schedule = DDPMSchedule(int(args.get("timesteps", 1000)), device=self.device)
        self.sampling = str(args.get("sampler", "ddpm"))
        if self.sampling not in SAMPLERS:
            raise UserError(f"task.sampler={self.sampling!r}: choose one of {', '.join(SAMPLERS)} "
                            "(ddpm: Algorithm 2 over all T steps; ddim: the faster extension).")
        self.sample_steps = int(args.get("sample_steps", 20))
        self.ddim_eta = float(args.get("ddim_eta", 0.0))
        if self.sampling == "ddim":
            self.schedule.ddim_timesteps(self.sample_steps)  # UserError unless 1 ≤ S ≤ T
            if not 0.0 <= self.ddim_eta <= 1.0:
                raise UserError(f"task.ddim_eta={self.ddim_eta:g}: η must lie in 0 … 1 (0: deterministic, "
                                "1: as much noise as DDPM's posterior); e.g. --set ddim_eta=0.")
        self.quality_samples = int(args.get("quality_samples", 200))
        self.picture_samples = int(args.get("picture_samples", 20))
        decay = float(args.get("ema", 0.0))
        self.ema = EMA(self.model, decay) if decay > 0 else None
        self.modules = {"model": self.model, **({"ema": self.ema} if self.ema is not None else {})}
        self.optimizer = make_optimizer([self.model], cfg.train)
        self.optimizers = {"model": self.optimizer}
        self.scheduler = make_scheduler(self.optimizer, cfg.train, self.steps_per_epoch() * cfg.train.epochs)
        self.schedulers = {"model": self.scheduler} if self.scheduler else {}
        self.sample_seconds = 0.0  # wall time of the last sample() call
        self._sample_timing = (0, 0.0)  # (samples drawn, seconds) of that call

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

    def drop_labels(self, y: Tensor) -> Tensor:
        """y with each label replaced by ∅ (self.null_label) with probability task.label_dropout;
        y itself, with nothing drawn, at 0."""
        if self.label_dropout <= 0:
            return y
        drop = torch.rand(y.shape, device=y.device) < self.label_dropout  # (B,) on the run's own stream
        return torch.where(drop, torch.full_like(y, self.null_label), y)

    def train_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch
        y = self.drop_labels(y)  # (B,) some labels ∅ with label dropout; unchanged without
        loss = self.schedule.loss(self.eps_model(y), self.signed(x))  # Algorithm 1
        self.update(loss)
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
            out["val_sample_seconds"] = self.sample_seconds  # wall time for those samples: the sampler's cost
            out["val_judge_acc"] = self.judge().val_acc
        return out

    def labels(self, n: int) -> Tensor | None:
        return torch.arange(n, device=self.device) % self.data.num_classes if self.conditional else None

    @torch.inference_mode()
    def sample(self, n: int, salt: int = 0, keep: int = 0, snapshots: int = 0,
               net: nn.Module | None = None) -> tuple[Tensor, Tensor | None]:
        """n samples in [0, 1] by Algorithm 2 (task.sampler = "ddpm") or DDIM ("ddim");
        labels 0, 1, 2, … when conditional. Sets sample_seconds, the wall time it took.
        `net`: another ε_θ to sample with than self.sampler (the same noise for the same salt)."""
        net = (net or self.sampler).eval()
        y = self.labels(n)
        kw = dict(generator=self.eval_generator(salt), device=self.device, keep=keep, snapshots=snapshots)
        shape = (n, *self.data.input_shape)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        if self.sampling == "ddim":
            x, frames = self.schedule.ddim_sample_loop(self.eps_model(y, net), shape, steps=self.sample_steps,
                                                       eta=self.ddim_eta, **kw)
        else:
            x, frames = self.schedule.p_sample_loop(self.eps_model(y, net), shape, **kw)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.sample_seconds = time.perf_counter() - t0
        self._sample_timing = (n, self.sample_seconds)
        self._frames = frames
        return self.from_signed(x), y

    def pictures(self, epoch: int, final: bool) -> list[PictureReady]:
        cached = getattr(self, "_final_samples", None)  # the judge's samples, when evaluate drew them
        if cached is not None and len(cached[0]) >= self.picture_samples:
            samples = cached[0][:max(self.picture_samples, min(len(cached[0]), 10 * self.data.num_classes))]
        else:
            samples, _ = self.sample(self.picture_samples, salt=2)
        drawn, seconds = self._sample_timing  # of the draw the grid comes from
        self.sample(4, salt=3, keep=4, snapshots=11)
        strip = self._strip(self._frames)
        what = "one row per class, columns 0 … 9 asked for" if self.conditional else "unconditional"
        return [
            PictureReady("forward", f"forward process q(x_t | x_0) of one image at t = 0 … {self.schedule.T} (closed form)",
                         epoch, self._forward_strip()),
            PictureReady("reverse", f"{self.sampler_text()} on 4 samples: x_T (left) → x_0 (right)", epoch, strip),
            PictureReady("samples", f"samples x_0 ({what}); {self.sampler_text()}: {drawn} drawn in {seconds:.1f} s",
                         epoch, self._grid(samples)),
        ]

    def sampler_text(self) -> str:
        """How samples are drawn, in words: 'Algorithm 2, 100 steps' or 'DDIM, 20 of 100 steps, η = 0'."""
        if self.sampling == "ddim":
            return f"DDIM, {self.sample_steps} of {self.schedule.T} steps, η = {self.ddim_eta:g}"
        return f"Algorithm 2, {self.schedule.T} steps"

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
