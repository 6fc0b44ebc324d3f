"""Unlearning: erase one class from the chapter-3 class-conditional diffusion model by
fine-tuning, with ESD (Gandikota, Materzyńska, Fiotto-Kaufman & Bau 2023, "Erasing
Concepts from Diffusion Models").

The model is the diffusion lesson's U-Net ε_θ(x_t, t, y), trained with label dropout so
that it also predicts the noise without a class, ε_θ(x_t, t, ∅). ESD keeps a frozen copy
θ* of it and fine-tunes θ so that, asked for the erased class c, it predicts what the
frozen model predicts *against* c (negative classifier-free guidance):

    ε*(x_t, t) = ε_θ*(x_t, t, ∅) − η · (ε_θ*(x_t, t, c) − ε_θ*(x_t, t, ∅))
    L_erase    = ‖ε_θ(x_t, t, c) − ε*(x_t, t)‖²

Sampling with class c then walks away from c. ESD draws x_t by running the sampler part
of the way with the concept's prompt, having no images of it; here labelled digits of
class c exist, so x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε on real ones (Algorithm 1's noising), which
costs no sampling steps.

Erasing c alone may drag the other classes along, since they share every weight. Later
work keeps them with a "preserve" term on other concepts (Kumari et al. 2023, "Ablating
Concepts in Text-to-Image Diffusion Models", a regulariser on anchor concepts; Heng & Soh
2023, "Selective Amnesia", generative replay of the classes to keep). Here it takes a
distillation form: on noised images of the other classes y ≠ c, the fine-tuned model
keeps the frozen one's own prediction,

    L_keep = ‖ε_θ(x_t, t, y) − ε_θ*(x_t, t, y)‖²,     L = L_erase + λ · L_keep.

`task.params` = "all" fine-tunes the whole U-Net (as ESD-u does its non-cross-attention
weights); "embedding" only the class embedding table, where the class enters the
network (as ESD-x tunes only the cross-attention, where the text enters): only row c gets
a gradient from L_erase, so the other classes stay as they were without L_keep.

Measured with the chapter-3 judge on the same latent noise before (the frozen copy) and
after (the fine-tuned model): the share of samples asked for c that it still labels c,
and the class match of the other classes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.engine.optim import make_optimizer, make_scheduler
from dlcourse_tui.errors import UserError
from dlcourse_tui.tasks.diffusion import DiffusionTask
from dlcourse_tui.tasks.generate import EMA, EVAL_BATCH, image_grid

NEED = "diffusion"  # the [needs.NAME] of the lesson: the diffusion run to erase from
PARAMS = ("all", "embedding")
UPSTREAM_TASK_ARGS = ("timesteps",)  # the upstream's settings the schedule must share


def esd_target(eps_null: Tensor, eps_c: Tensor, eta: float) -> Tensor:
    """ESD's regression target ε* = ε(∅) − η (ε(c) − ε(∅)), from the frozen model's two predictions."""
    return eps_null - eta * (eps_c - eps_null)  # (B, C, H, W)


class UnlearnTask(DiffusionTask):
    """ESD fine-tuning of a diffusion run's U-Net (or of a random one, when there is no such run)."""

    # -- set-up ------------------------------------------------------------------------
    def build(self) -> None:
        args = self.config.task_args
        self.erase = int(args.get("erase", 3))
        self.eta = float(args.get("eta", 1.0))
        self.preserve = float(args.get("preserve", 1.0))
        self.params = str(args.get("params", "all"))
        self.per_class = int(args.get("judge_per_class", 30))
        if self.params not in PARAMS:
            raise UserError(f"task.params={self.params!r}: choose one of {', '.join(PARAMS)} "
                            "(all: the whole U-Net; embedding: only the class embedding table).")
        if self.per_class < 1:
            raise UserError(f"task.judge_per_class={self.per_class}: the judge needs at least one sample of each "
                            "class; e.g. --set judge_per_class=30.")
        self.erase_idx = torch.nonzero(self.data.train.y == self.erase).flatten().cpu()  # (n_c,) images of c
        self.keep_idx = torch.nonzero(self.data.train.y != self.erase).flatten().cpu()  # (n_k,) the others
        if len(self.erase_idx) == 0 or len(self.keep_idx) == 0:
            raise UserError(f"task.erase={self.erase}: the {len(self.data.train)} training images hold no image of "
                            f"class {self.erase} (or none of any other class); raise n_train.")
        super().build()  # the U-Net (the upstream's settings), schedule, sampler, optimiser
        if not self.conditional or not getattr(self.model.cfg, "null_class", False):
            raise UserError("unlearning needs a class-conditional U-Net with a null class (ESD's target uses "
                            "ε(x_t, t, ∅)); keep conditional=true and null_class=true.")
        self.built_on = self.load_upstream_model()
        self.frozen = copy.deepcopy(self.model).requires_grad_(False).eval()  # θ*: the model before erasing
        self.modules = {"model": self.model, "frozen": self.frozen}
        if self.params == "embedding":  # ESD-x's counterpart: only where the class enters
            self.model.requires_grad_(False)
            self.model.class_emb.requires_grad_(True)
            self.optimizer = make_optimizer([self.model.class_emb], self.config.train)
            self.optimizers = {"model": self.optimizer}
            self.scheduler = make_scheduler(self.optimizer, self.config.train,
                                            self.steps_per_epoch() * self.config.train.epochs)
            self.schedulers = {"model": self.scheduler} if self.scheduler else {}
        self._before: tuple[Tensor, Tensor, Tensor] | None = None  # (samples, labels, judged) of θ*

    def build_model(self, name: str | None = None, **extra) -> nn.Module:
        """The U-Net with the upstream run's model settings (its width, patch, …), so its weights fit."""
        up = self.upstream.get(NEED)
        if up is not None:
            extra = {**{k: v for k, v in up.config.get("model", {}).items() if k != "name"}, **extra}
        return super().build_model(name, **extra)

    def load_upstream_model(self) -> str:
        """The upstream run's weights in self.model: its weight average when it kept one (what it
        sampled with), else its raw weights. Returns that run's id ('' without one)."""
        up = self.upstream.get(NEED)
        if up is None:
            return ""
        ups = up.config.get("task_args", {})
        for key in UPSTREAM_TASK_ARGS:
            if key in ups and ups[key] != self.config.task_args.get(key, ups[key]):
                raise UserError(f"run {up.run_id} was trained with {key}={ups[key]}, this run has "
                                f"{key}={self.config.task_args[key]}; run again with --set {key}={ups[key]}.")
        if "ema" in up.state.get("modules", {}):
            holder = EMA(self.model, 0.5)  # the upstream's average loads into its copy of the model
            self.init_from_upstream(NEED, holder, key="ema")
            self.model.load_state_dict(holder.model.state_dict())
        else:
            self.init_from_upstream(NEED, self.model)
        return up.run_id

    def steps_per_epoch(self) -> int:
        return int(self.config.task_args.get("steps", 300))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    # -- training ----------------------------------------------------------------------
    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """(images of c, images of other classes, their labels), batch_size of each, drawn
        in an order fixed by (seed, epoch): cycling through a permutation of each set."""
        self.epoch_index = epoch
        train, bs = self.data.train, self.config.train.batch_size
        g = torch.Generator().manual_seed(self.config.train.seed * 1_000_003 + epoch)
        erase = self.erase_idx[torch.randperm(len(self.erase_idx), generator=g)]  # (n_c,)
        keep = self.keep_idx[torch.randperm(len(self.keep_idx), generator=g)]  # (n_k,)
        for i in range(start, self.steps_per_epoch()):
            at = torch.arange(i * bs, (i + 1) * bs)  # (B,)
            ie, ik = erase[at % len(erase)].to(self.device), keep[at % len(keep)].to(self.device)
            yield train.x[ie], train.x[ik], train.y[ik]

    def noised(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """(x_t, t) for t ~ Uniform and ε ~ N(0, I), drawn from the run's stream in that order."""
        t = torch.randint(0, self.schedule.T, (x0.shape[0],), device=x0.device)  # (B,)
        eps = torch.randn_like(x0)
        return self.schedule.q_sample(x0, t, eps), t  # (B, C, H, W), (B,)

    def losses(self, batch: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """(L_erase, L_keep) of one batch; draws t and ε for the images of c first, then for the others."""
        xe, xk, yk = batch
        xte, te = self.noised(self.signed(xe))  # (B, C, H, W), (B,)
        xtk, tk = self.noised(self.signed(xk))
        b = len(xte)
        c = torch.full_like(te, self.erase)
        null = torch.full_like(te, self.null_label)
        with torch.no_grad():  # θ*: ε(∅) and ε(c) on the images of c, ε(y) on the others, in one call
            eps_null, eps_c, eps_keep = self.frozen(torch.cat([xte, xte, xtk]), torch.cat([te, te, tk]),
                                                    torch.cat([null, c, yk])).split([b, b, len(xtk)])
            target = esd_target(eps_null, eps_c, self.eta)  # (B, C, H, W) ε*
        pred_c, pred_keep = self.model(torch.cat([xte, xtk]), torch.cat([te, tk]), torch.cat([c, yk])).split([b, len(xtk)])
        return F.mse_loss(pred_c, target), F.mse_loss(pred_keep, eps_keep)

    def train_step(self, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        erase, keep = self.losses(batch)
        loss = erase + self.preserve * keep
        self.update(loss)
        return {"loss": loss.detach(), "erase": erase.detach(), "keep": keep.detach()}

    def examples_in(self, batch: tuple[Tensor, Tensor, Tensor]) -> int:
        return len(batch[0]) + len(batch[1])

    # -- evaluation --------------------------------------------------------------------
    @torch.inference_mode()
    def judged(self, samples: Tensor) -> Tensor:
        """The judge's label of each sample (N,)."""
        net = self.judge().net
        return torch.cat([net(samples[i:i + EVAL_BATCH].float()).argmax(1) for i in range(0, len(samples), EVAL_BATCH)])

    def judge_samples(self, net: nn.Module) -> tuple[Tensor, Tensor, Tensor]:
        """judge_per_class samples of each class from `net`, from the same latent noise for any
        net (salt 1): (samples (N, C, H, W), asked (N,), judged (N,))."""
        samples, asked = self.sample(self.per_class * self.data.num_classes, salt=1, net=net)
        return samples, asked, self.judged(samples)

    def match_per_class(self, asked: Tensor, judged: Tensor) -> list[float]:
        """For each class, the share of the samples asked for it that the judge labels as it."""
        hit = (asked == judged).float()
        return [hit[asked == k].mean().item() for k in range(self.data.num_classes)]

    def summary(self, per_class: list[float]) -> tuple[float, float]:
        """(match of the erased class, mean match of the others)."""
        others = [m for k, m in enumerate(per_class) if k != self.erase]
        return per_class[self.erase], sum(others) / len(others)

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        """Algorithm 1's loss on validation images of the other classes (fixed t and ε), before
        and after; after the last epoch (or every task.quality_every) the judge's class match
        on the same latent noise, before (θ*, judged once) and after."""
        keep = torch.nonzero(self.data.val.y != self.erase).flatten()
        out = {"val_keep_loss": self._val_loss(self.model, keep), "val_keep_loss_before": self._val_loss(self.frozen, keep)}
        self._after = None
        if self.quality_due():
            if self._before is None:
                self._before = self.judge_samples(self.frozen)
            self._after = self.judge_samples(self.model)
            before = self.match_per_class(*self._before[1:])
            after = self.match_per_class(*self._after[1:])
            out["val_erased_match_before"], out["val_others_match_before"] = self.summary(before)
            out["val_erased_match"], out["val_others_match"] = self.summary(after)
            out["val_others_drop"] = out["val_others_match_before"] - out["val_others_match"]
            self._per_class = (before, after)
            out["val_sample_seconds"] = self.sample_seconds
        return out

    def _val_loss(self, net: nn.Module, idx: Tensor) -> float:
        net.eval()
        val, g = self.data.val, self.eval_generator()
        total = torch.zeros((), device=self.device)
        for i in range(0, len(idx), EVAL_BATCH):
            at = idx[i:i + EVAL_BATCH]
            x0 = self.signed(val.x[at])
            t = torch.randint(0, self.schedule.T, (len(x0),), generator=g).to(self.device)
            eps = self.randn(*x0.shape, generator=g)
            pred = net(self.schedule.q_sample(x0, t, eps), t, val.y[at])
            total += (pred - eps).pow(2).mean(dim=(1, 2, 3)).sum()
        return total.item() / max(len(idx), 1)

    # -- pictures and tables -----------------------------------------------------------
    def pictures(self, epoch: int, final: bool) -> list[PictureReady | TableReady]:
        """The same latent noise before and after, one row per class (the erased row marked);
        with the judge's verdicts, the table of class match per class."""
        if self._after is None:
            return []
        cols = min(self.per_class, 10)
        what = f"one row per class 0 … {self.data.num_classes - 1} asked for, {cols} of each; {self.sampler_text()}"
        out: list[PictureReady | TableReady] = [
            PictureReady("before", f"before erasing (the loaded model): {what}", epoch, self._rows(self._before[0], cols)),
            PictureReady("after", f"after erasing class {self.erase} (same noise): {what}", epoch,
                         self._rows(self._after[0], cols)),
        ]
        before, after = self._per_class
        rows = [(f"{k}" + (" (erased)" if k == self.erase else ""), f"{b:.2f}", f"{a:.2f}", f"{a - b:+.2f}")
                for k, (b, a) in enumerate(zip(before, after))]
        eb, ob = self.summary(before)
        ea, oa = self.summary(after)
        rows.append(("others (mean)", f"{ob:.2f}", f"{oa:.2f}", f"{oa - ob:+.2f}"))
        out.append(TableReady("erasure", f"share of samples the judge labels as the class asked for, {self.per_class} "
                              f"per class, the same noise before and after (erased: {self.erase}, η = {self.eta:g}, "
                              f"λ = {self.preserve:g}, params {self.params})", ("class", "before", "after", "change"),
                              tuple(rows)))
        return out

    def _rows(self, samples: Tensor, cols: int) -> np.ndarray:
        """The first `cols` samples of each class as a grid, one row per class, the erased row framed."""
        k = self.data.num_classes
        grid = samples.view(self.per_class, k, *samples.shape[1:])[:cols].transpose(0, 1)  # (k, cols, C, H, W)
        grid = grid.expand(-1, -1, 3, -1, -1).clone() if grid.shape[2] == 1 else grid.clone()
        row = grid[self.erase]  # (cols, 3, H, W): a red frame on the erased class's samples
        red = torch.tensor([1.0, 0.2, 0.2], device=row.device).view(1, 3, 1, 1)
        row[:, :, [0, -1], :] = red
        row[:, :, :, [0, -1]] = red
        return image_grid(grid.flatten(0, 1), ncols=cols)
