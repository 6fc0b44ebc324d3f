"""Generative adversarial networks: two players, two optimisers, one custom step.

Each step first updates the discriminator D on a batch of real images and a batch of
G's fakes (z ~ N(0, I)):

    L_D = −log D(x) − log(1 − D(G(z)))          (binary cross-entropy, real = 1, fake = 0)

then the generator G against the updated D, with the non-saturating loss

    L_G = −log D(G(z))                           (instead of log(1 − D(G(z))), which
                                                  gives G almost no gradient early on)

`task.g_loss = "saturating"` switches to the original min-max form for comparison;
`task.d_lr_ratio` gives D a different learning rate from G (train.lr); `task.g_steps`
updates G several times per D update (a way to provoke mode collapse).
`task.ema` > 0 keeps an exponential moving average of G's weights (generate.EMA), and the
judge and the pictures sample from it: G's weights circle as it chases a moving D, and
their average sits nearer the middle.
modules = {"G", "D"} (+ "ema") and optimizers = {"G", "D"}, so checkpoints and resume cover all.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dlcourse_tui.engine.events import PictureReady
from dlcourse_tui.engine.optim import make_optimizer, make_scheduler
from dlcourse_tui.errors import UserError
from dlcourse_tui.tasks.generate import EMA, GenerativeTask, image_grid

G_LOSSES = ("non-saturating", "saturating")


class GANTask(GenerativeTask):
    """Alternating updates: D, then G; both losses and D's accuracy on real and fake charted."""

    def build(self) -> None:
        self.check_images()
        cfg, args = self.config, self.config.task_args
        self.g_loss = str(args.get("g_loss", "non-saturating"))
        if self.g_loss not in G_LOSSES:
            raise UserError(f"task.g_loss={self.g_loss!r}: choose one of {', '.join(G_LOSSES)}.")
        self.g_steps = int(args.get("g_steps", 1))
        self.quality_samples = int(args.get("quality_samples", 1000))
        model = self.build_model()
        self.G, self.D = model.generator, model.discriminator
        self._check_batches(model.cfg.pack, model.cfg.mbd_kernels > 0)
        self.latent = model.cfg.latent
        decay = float(args.get("ema", 0.0))
        self.ema = EMA(self.G, decay) if decay > 0 else None  # the G that samples (None: G itself)
        self.modules = {"G": self.G, "D": self.D, **({"ema": self.ema} if self.ema is not None else {})}
        d_train = replace(cfg.train, lr=cfg.train.lr * float(args.get("d_lr_ratio", 1.0)))
        self.opt_G = make_optimizer([self.G], cfg.train)
        self.opt_D = make_optimizer([self.D], d_train)
        for opt in (self.opt_G, self.opt_D):
            if isinstance(opt, torch.optim.Adam):  # β₁ = 0.5, as DCGAN recommends
                for group in opt.param_groups:
                    group["betas"] = (0.5, 0.999)
        self.optimizers = {"G": self.opt_G, "D": self.opt_D}
        total = self.steps_per_epoch() * cfg.train.epochs
        scheds = {"G": make_scheduler(self.opt_G, cfg.train, total), "D": make_scheduler(self.opt_D, d_train, total)}
        self.schedulers = {k: s for k, s in scheds.items() if s is not None}
        self.fixed_z = torch.randn(64, self.latent, generator=self.eval_generator(1)).to(self.device)  # the picture's z

    def _check_batches(self, pack: int, compares: bool) -> None:
        """Every batch, the epoch's last (shorter) one included, must fill a pack of D's, and
        two when D compares the samples of a batch (minibatch discrimination)."""
        self.d_batch_min = need = pack * (2 if compares else 1)
        bs, n = self.config.train.batch_size, len(self.data.train)
        sizes = {min(bs, n)} | ({n % bs} if n % bs else set())
        if min(sizes) < need:
            raise UserError(f"D needs batches of at least {need} images (pack={pack}"
                            f"{', times 2 to compare samples' if compares else ''}), but batch_size={bs} on "
                            f"{n} training images leaves a batch of {min(sizes)}; change batch_size or n_train.")

    def num_params(self) -> int:
        """G's and D's parameters; the weight average is a copy of G, not more model."""
        return sum(p.numel() for m in (self.G, self.D) for p in m.parameters())

    # -- the two updates -------------------------------------------------------------
    def d_step(self, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        """One update of D on real (B, C, H, W) and fake images; G is not touched. D's
        accuracies count packs (with model.pack = 1, images)."""
        d_real = self.D(real)  # (B/m, 1) logits, one per pack of m images (m = model.pack)
        d_fake = self.D(fake.detach())  # (B/m, 1); detach: no gradient reaches G
        loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        self.opt_D.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_D.step()
        return {"loss_d": loss.detach(), "d_acc_real": (d_real > 0).float().mean(),
                "d_acc_fake": (d_fake < 0).float().mean()}

    def g_step(self, fake: Tensor) -> Tensor:
        """One update of G through the (just updated) D; D's parameters are not stepped."""
        logits = self.D(fake)  # (B/m, 1)
        if self.g_loss == "non-saturating":
            loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))  # −log D(G(z))
        else:
            loss = -F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))  # log(1 − D(G(z)))
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_G.step()
        self.D.zero_grad(set_to_none=True)  # the gradient G's loss left in D is not D's to use
        return loss.detach()

    def train_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        real = self.signed(batch[0])  # (B, C, H, W) in [−1, 1]
        z = torch.randn(real.shape[0], self.latent, device=self.device)
        fake = self.G(z)  # (B, C, H, W)
        out = self.d_step(real, fake)
        loss_g = self.g_step(fake)
        for _ in range(self.g_steps - 1):
            loss_g = self.g_step(self.G(torch.randn(real.shape[0], self.latent, device=self.device)))
        if self.ema is not None:
            self.ema.update(self.G)
        for s in self.schedulers.values():
            s.step()
        # "loss" (checked for NaN) is the sum of the two players' losses; watch loss_d and loss_g
        return {"loss": out["loss_d"] + loss_g, "loss_g": loss_g, **out}

    # -- evaluation and pictures -----------------------------------------------------
    @property
    def sampler(self) -> torch.nn.Module:
        """The generator that samples for the judge and the pictures: the weight average when there is one."""
        return self.ema.model if self.ema is not None else self.G

    @torch.inference_mode()
    def generate(self, n: int, salt: int = 2) -> Tensor:
        """n samples G(z) in [0, 1] with evaluation noise (G in eval mode: batch-norm running statistics)."""
        G = self.sampler.eval()
        z = self.randn(n, self.latent, generator=self.eval_generator(salt))
        return self.from_signed(G(z))

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        """The judge's view of quality_samples samples (generating them is cheap, so every epoch),
        and D's accuracy on validation images."""
        self.D.eval()
        val = self.data.val
        out = {}
        if len(val) >= self.d_batch_min:  # D's accuracy per pack of validation images
            out["val_d_acc_real"] = (self.D(self.signed(val.x[:1000])) > 0).float().mean().item()
        if self.quality_samples > 0:
            judge = self.judge()
            out.update({f"val_{k}": v for k, v in judge.score(self.generate(self.quality_samples)).items()})
            out["val_judge_acc"] = judge.val_acc
        return out

    def pictures(self, epoch: int, final: bool) -> list[PictureReady]:
        return [PictureReady("samples", "G(z) for the same 64 fixed z every epoch", epoch, self._fixed_grid())]

    @torch.inference_mode()
    def _fixed_grid(self) -> np.ndarray:
        G = self.sampler.eval()
        return image_grid(self.from_signed(G(self.fixed_z)), ncols=8)
