"""Self-supervised learning (chapter 2): pretrain one encoder without labels, then freeze it
and read it with a linear probe trained on a few labels.

A run has two phases, by epoch. The first `epochs − probe_epochs` epochs pretrain the encoder
(the chapter-2 CNN, models/ssl.py) with one method; the batches of that phase are images
only, the labels are never read. The last `probe_epochs` epochs train linear probes on the
frozen features of a small labelled subset (`label_fraction` of the training images, chosen
by the seed alone), at once:

- on h, the encoder's output (the representation the method leaves behind), read on the
  input the method trained it on (`encode`: grey images for colorization, the whole image
  at the tiles' scale for Jigsaw, whose encoder saw only tiles);
- on z = g(h), the projection head's output, for the methods that have one (simclr, byol,
  barlow): "why a projection head?" is answered by the two numbers side by side;
- on h of the same encoder as it was before pretraining (its random initialisation), read
  the same way: the baseline every method must beat.

Methods (task.method): rotnet, jigsaw, colorization (pretext tasks, ssl_pretext.py); simclr,
byol, barlow (two views, ssl_losses.py); random (no pretraining: the probe phase only) and
supervised (the same encoder and its linear head trained with labels on the labelled
subset, label_fraction = 1 for all of them): the baselines.

The metric `phase` says where a run is: 1 while pretraining (or training the supervised
baseline), 2 while probing. `z_std`, the collapse monitor (the mean per-dimension standard
deviation of the ℓ2-normalised embedding), is logged every step of pretraining.
At the end the run prints the lesson's table: its own row and those of the newest completed
runs of the lesson's other methods and baselines with the same data, seed and labels.

Not distributed: SimCLR's negatives and Barlow Twins' batch statistics are those of the
whole batch, which several processes would have to gather (all_gather) before the loss;
the lesson refuses --nproc-per-node instead.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.data.augment import Augmenter, parse_augment
from dlcourse_tui.data.views import ViewConfig, make_view
from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.engine.optim import make_optimizer, make_scheduler
from dlcourse_tui.errors import UserError
from dlcourse_tui.models.registry import create_model
from dlcourse_tui.models.ssl import JigsawHead, MLPHead
from dlcourse_tui.tasks.base import Task
from dlcourse_tui.tasks.classify import shuffled_order
from dlcourse_tui.tasks.ssl_losses import barlow_twins_loss, byol_loss, contrastive_logits, embedding_std, nt_xent
from dlcourse_tui.tasks.ssl_pretext import (
    COLOR_MAP, TILE_PX, at_tile_scale, chroma_target, hamming_permutations, jigsaw_tiles, luma, max_permutations,
    min_hamming, rotate_all, shuffle_tiles,
)

PRETEXT = ("rotnet", "jigsaw", "colorization")
TWO_VIEWS = ("simclr", "byol", "barlow")
BASELINES = ("random", "supervised")
METHODS = PRETEXT + TWO_VIEWS + BASELINES
PRETRAIN, PROBE = 1.0, 2.0  # the `phase` metric
EVAL_BATCH = 1000
VIEW_SEED_OFFSET = 104_729  # the views' generator, apart from the shuffle's and the data's
LABEL_SEED_OFFSET = 15_485_863  # which images are labelled: a function of the seed alone
PROBE_SEED_OFFSET = 32_452_843  # the augmented copies the probes train on


@dataclass(frozen=True)
class ProbeStep:
    """A batch of the probe phase: the probes train on the cached features, not on images."""

    index: int


def _arg(args: dict[str, Any], key: str, default: Any) -> Any:
    return args.get(key, default)


class SSLTask(Task):
    """Pretraining without labels, then linear probes on frozen features (see the module docstring)."""

    supports_distributed = False  # negatives and batch statistics of the whole batch: see the module docstring

    # -- set-up ------------------------------------------------------------------------
    def build(self) -> None:
        cfg, data, args = self.config, self.data, self.config.task_args
        if data.kind != "image":
            raise UserError(f"the self-supervised lesson learns from images, but {cfg.data} is {data.kind} data; "
                            "pick --data shapes, digits, mnist, fashion-mnist, cifar10 or imagefolder.")
        self.method = str(_arg(args, "method", "simclr"))
        if self.method not in METHODS:
            raise UserError(f"task.method={self.method!r}: choose one of {', '.join(METHODS)}.")
        self._read_settings(args)
        self.mean = torch.tensor(data.mean, device=self.device).view(1, -1, 1, 1)  # (1, C, 1, 1)
        self.std = torch.tensor(data.std, device=self.device).view(1, -1, 1, 1)
        self.labelled = self._choose_labelled()  # (K,) indices into the training split; no label is read
        self._check_batches()

        self.encoder = create_model(cfg.model, input_shape=data.input_shape, num_classes=data.num_classes,
                                    args=cfg.model_args,
                                    strict={k[6:] for k in cfg.explicit if k.startswith("model.")}).to(self.device)
        self.encoder = self.encoder.to(memory_format=torch.channels_last)  # about 1.3× faster convolutions on a CPU
        self.random_encoder = copy.deepcopy(self.encoder).requires_grad_(False)  # the same weights, never trained
        d_h = self.encoder.feature_dim
        self.heads = nn.ModuleDict(self._make_heads(d_h)).to(self.device)
        d_read = self.d_read if self.method == "jigsaw" else d_h  # what the probes read (see encode)
        # the width of what the collapse monitor measures: z, a tile's h (jigsaw) or h
        self.d_monitor = self.proj_dim if self.method in TWO_VIEWS else self.d_tile if self.method == "jigsaw" else d_h
        self.modules = {"encoder": self.encoder, "heads": self.heads, "random_encoder": self.random_encoder}
        if self.method == "byol":  # the target network: an exponential moving average of the online one
            self.target = nn.ModuleDict({"encoder": copy.deepcopy(self.encoder),
                                         "projector": copy.deepcopy(self.heads["projector"])}).requires_grad_(False)
            self.modules["target"] = self.target
        self.has_z = self.method in TWO_VIEWS
        if self.method != "supervised":
            probes = {"h": nn.Linear(d_read, data.num_classes)}
            if self.has_z:
                probes["z"] = nn.Linear(self.proj_dim, data.num_classes)
            if self.method != "random":
                probes["random"] = nn.Linear(d_read, data.num_classes)
            self.probes = nn.ModuleDict(probes).to(self.device)
            self.modules["probes"] = self.probes

        train = cfg.train
        if self.method == "supervised":
            self.opt = make_optimizer([self.encoder], train)
            self.optimizers = {"pretrain": self.opt}
            sched = make_scheduler(self.opt, train, self.steps_per_epoch() * train.epochs)
        else:
            # also when there is no epoch to pretrain: a run resumed with more epochs finds the same parts
            self.opt = make_optimizer([self.encoder, self.heads], train) if self.method != "random" else None
            self.probe_opt = torch.optim.AdamW(self.probes.parameters(), lr=self.probe_lr, weight_decay=self.probe_wd)
            self.optimizers = {"probe": self.probe_opt, **({"pretrain": self.opt} if self.opt else {})}
            sched = (make_scheduler(self.opt, train, max(1, self.steps_per_epoch() * self.pretrain_epochs))
                     if self.opt else None)
        self.scheduler = sched
        self.schedulers = {"pretrain": sched} if sched is not None else {}

        self.generator = torch.Generator(device=self.device).manual_seed(train.seed * 1_000_003 + VIEW_SEED_OFFSET)
        aug = parse_augment(_arg(args, "augment", "flip,crop=2"), args)
        self.augment_cfg = aug
        self.augmenter = Augmenter(aug, 0, self.device) if aug.active else None  # draws from self.generator
        self.spread: list[Tensor] = []  # the collapse monitor, one 0-d tensor per pretraining step
        self.pretrain_seconds = 0.0
        self.probe_started = False
        self._probe_data: dict[str, Tensor] | None = None  # the probes' cached features (the encoder is frozen)
        self._val_frozen: dict[str, Tensor] | None = None
        self.last_eval: dict[str, float] = {}

    def _read_settings(self, args: dict[str, Any]) -> None:
        """Every knob of the task, checked: one sentence per bad value."""
        cfg, n = self.config, len(self.data.train)
        self.label_fraction = float(_arg(args, "label_fraction", 0.1))
        if not 0 < self.label_fraction <= 1:
            raise UserError(f"label_fraction={self.label_fraction:g}: the labelled share of the training images lies "
                            "in (0, 1], e.g. --set label_fraction=0.1 for 10 %.")
        self.probe_epochs = int(_arg(args, "probe_epochs", 2))
        if self.probe_epochs < 1:
            raise UserError(f"probe_epochs={self.probe_epochs}: the linear probe needs at least 1 epoch.")
        self.pretrain_epochs = 0 if self.method in BASELINES else max(0, cfg.train.epochs - self.probe_epochs)
        self.temperature = float(_arg(args, "temperature", 0.2))
        if self.temperature <= 0:
            raise UserError(f"temperature={self.temperature:g}: NT-Xent divides similarities by τ, which must be "
                            "positive, e.g. --set temperature=0.2.")
        self.lambda_offdiag = float(_arg(args, "lambda_offdiag", 0.005))
        if self.lambda_offdiag < 0:
            raise UserError(f"lambda_offdiag={self.lambda_offdiag:g}: λ weighs a sum of squares and cannot be "
                            "negative; 0 drops the redundancy term.")
        self.ema = float(_arg(args, "ema", 0.99))
        if not 0 <= self.ema < 1:
            raise UserError(f"ema={self.ema:g}: the target's decay τ lies in [0, 1) (0: the target is a copy of the "
                            "online network, without gradient).")
        self.use_predictor = bool(_arg(args, "predictor", True))
        self.proj_dim = int(_arg(args, "proj_dim", 128))
        self.proj_hidden = int(_arg(args, "proj_hidden", 512))
        if self.proj_dim < 2 or self.proj_hidden < 2:
            raise UserError(f"proj_dim={self.proj_dim}, proj_hidden={self.proj_hidden}: the projection head needs "
                            "at least 2 units in each layer.")
        self.grid = int(_arg(args, "jigsaw_grid", 2))
        if self.grid not in (2, 3):
            raise UserError(f"jigsaw_grid={self.grid}: the puzzle is a 2×2 or a 3×3 grid of tiles.")
        self.n_perms = int(_arg(args, "n_permutations", max_permutations(self.grid)))
        most = max_permutations(self.grid)
        if not 2 <= self.n_perms <= most:
            raise UserError(f"n_permutations={self.n_perms}: a {self.grid}×{self.grid} jigsaw has only {most:,} "
                            f"orderings of its {self.grid ** 2} tiles; choose 2 to {most:,}.")
        self.probe_lr = float(_arg(args, "probe_lr", 0.01))
        self.probe_wd = float(_arg(args, "probe_wd", 0.01))
        self.probe_iters = int(_arg(args, "probe_iters", 10))
        self.probe_views = int(_arg(args, "probe_views", 4))
        if self.probe_lr <= 0 or self.probe_wd < 0 or self.probe_iters < 1 or self.probe_views < 0:
            raise UserError(f"probe_lr={self.probe_lr:g}, probe_wd={self.probe_wd:g}, probe_iters={self.probe_iters}, "
                            f"probe_views={self.probe_views}: need probe_lr > 0, probe_wd ≥ 0, probe_iters ≥ 1, "
                            "probe_views ≥ 0.")
        self.knn_k = int(_arg(args, "knn_k", 20))
        self.views = ViewConfig(crop=float(_arg(args, "view_crop", 0.75)), affine=float(_arg(args, "view_affine", 0.5)),
                                shuffle=float(_arg(args, "view_shuffle", 0.8)), color=float(_arg(args, "view_color", 0.4)),
                                gray=float(_arg(args, "view_gray", 0.2)))
        if not 0 < self.views.crop <= 1 or min(self.views.affine, self.views.shuffle, self.views.color,
                                                 self.views.gray) < 0 or max(self.views.shuffle, self.views.gray) > 1:
            raise UserError(f"views {self.views}: view_crop lies in (0, 1], view_shuffle and view_gray are "
                            "probabilities, view_affine and view_color are ≥ 0.")
        if n < 2:
            raise UserError(f"n_train={n}: self-supervised pretraining compares images, it needs at least 2.")

    def _choose_labelled(self) -> Tensor:
        """The labelled subset: the first round(fraction · n) of a permutation drawn from the seed."""
        n = len(self.data.train)
        k = round(self.label_fraction * n)
        if k < 1:
            raise UserError(f"label_fraction={self.label_fraction:g} of {n} training images labels none of them; "
                            f"give at least {1 / n:.2g}.")
        g = torch.Generator().manual_seed(self.config.train.seed * 1_000_003 + LABEL_SEED_OFFSET)
        return torch.randperm(n, generator=g)[:k].to(self.device)  # (K,)

    def _check_batches(self) -> None:
        bs, n = self.config.train.batch_size, len(self.data.train)
        if bs > n:
            raise UserError(f"batch_size={bs} is larger than the {n} training images; give at most {n}.")
        if bs < 2 and self.method != "random":
            why = {"simclr": "every image needs another one in its batch as a negative",
                   "barlow": "Barlow Twins normalises each dimension over the batch",
                   "byol": "batch norm in the projector needs 2 images"}.get(self.method, "batch norm needs 2 images")
            raise UserError(f"batch_size={bs} is too small for {self.method}: {why}; give at least 2, e.g. "
                            "--set batch_size=64.")

    def _make_heads(self, d_h: int) -> dict[str, nn.Module]:
        m = self.method
        hidden = self.proj_hidden
        if m in TWO_VIEWS:
            heads = {"projector": MLPHead(d_h, hidden, self.proj_dim)}  # g
            if m == "byol" and self.use_predictor:
                heads["predictor"] = MLPHead(self.proj_dim, hidden, self.proj_dim)  # q
            return heads
        if m == "rotnet":
            return {"rotation": MLPHead(d_h, hidden, 4)}
        if m == "jigsaw":
            enc_cfg = self.encoder.cfg
            try:
                shapes = type(enc_cfg)(**{**enc_cfg.__dict__, "input_shape": (enc_cfg.input_shape[0], TILE_PX, TILE_PX)}
                                       ).block_shapes()
            except ValueError as e:
                raise UserError(f"jigsaw: tiles of {TILE_PX} px are too small for this encoder ({e}).") from None
            c, th, tw = shapes[-1]
            self.perms = hamming_permutations(self.grid, self.n_perms, self.config.train.seed).to(self.device)
            self.d_tile = c * th * tw  # one tile's h
            self.d_read = sum(s[0] for s in shapes[-2:])  # the probes read the last two blocks' channels (see encode)
            return {"jigsaw": JigsawHead(self.grid ** 2, self.d_tile, hidden, self.n_perms)}
        if m == "colorization":
            return {"decoder": MLPHead(d_h, hidden, 3 * COLOR_MAP * COLOR_MAP)}
        return {}  # the baselines: nothing on top of the encoder (supervised uses its own linear head)

    def num_params(self) -> int:
        """The encoder and what trains on top of it; the target and the random-init copy are copies."""
        return sum(p.numel() for m in (self.encoder, self.heads) for p in m.parameters())

    # -- the phases ----------------------------------------------------------------------
    def phase(self, epoch: int) -> float:
        """1 (pretraining, or the supervised baseline's training) or 2 (the linear probe) for `epoch` (0-based)."""
        if self.method == "supervised":
            return PRETRAIN
        return PRETRAIN if epoch < self.pretrain_epochs else PROBE

    def steps_per_epoch(self) -> int:
        return len(self.data.train) // self.config.train.batch_size  # full batches: every batch holds its negatives

    def batches(self, epoch: int, start: int = 0) -> Iterator[Any]:
        bs, seed = self.config.train.batch_size, self.config.train.seed
        if self.method == "supervised":  # as many steps as the others, through shuffled passes over the labelled images
            for i in range(start, self.steps_per_epoch()):
                idx = self.labelled[self._labelled_stream((epoch * self.steps_per_epoch() + i) * bs, bs)]
                yield self.data.train.x[idx], self.data.train.y[idx]
            return
        if self.phase(epoch) == PROBE:
            for i in range(start, self.steps_per_epoch()):
                yield ProbeStep(i)
            return
        order = shuffled_order(len(self.data.train), seed, epoch, self.device)
        for i in range(start, self.steps_per_epoch()):
            yield self.data.train.x[order[i * bs:(i + 1) * bs]]  # images only: no label leaves the data here

    def _labelled_stream(self, start: int, count: int) -> Tensor:
        """Positions start … start + count − 1 of the endless sequence of shuffled passes over
        the labelled subset (pass j in the order of shuffled_order(K, seed, j)): (count,)."""
        k, seed = len(self.labelled), self.config.train.seed
        first, last = start // k, (start + count - 1) // k
        passes = torch.cat([shuffled_order(k, seed, j, self.device) for j in range(first, last + 1)])
        return passes[start - first * k:start - first * k + count]

    def examples_in(self, batch: Any) -> int:
        if isinstance(batch, ProbeStep):
            return len(self.labelled)
        return len(batch[0]) if isinstance(batch, tuple) else len(batch)

    def prepare(self, x: Tensor) -> Tensor:
        """uint8 images or floats in [0, 1] -> standardised floats, channels last: (B, C, H, W)."""
        x = x.float().div_(255) if x.dtype == torch.uint8 else x
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    # -- training steps ----------------------------------------------------------------
    def train_step(self, batch: Any) -> dict[str, Tensor]:
        if isinstance(batch, ProbeStep):
            return self.probe_step()
        t0 = time.perf_counter()
        if isinstance(batch, tuple):
            out = self.supervised_step(*batch)
        else:
            out = getattr(self, f"{self.method}_step")(batch)
            self.spread.append(out["z_std"])
        self.opt.zero_grad(set_to_none=True)
        out.pop("_loss").backward()
        self.opt.step()
        if self.method == "byol":
            self.update_target()
        if self.scheduler is not None:
            self.scheduler.step()
        self.pretrain_seconds += time.perf_counter() - t0
        return {k: v.detach() for k, v in out.items()}

    def _views(self, x: Tensor) -> Tensor:
        """Two random views of every image, stacked: (B, ...) -> (2B, ...) standardised."""
        return self.prepare(torch.cat([make_view(x, self.views, self.generator), make_view(x, self.views, self.generator)]))

    def _augment(self, x: Tensor) -> Tensor:
        return self.augmenter(x, generator=self.generator) if self.augmenter is not None else x

    def simclr_step(self, x: Tensor) -> dict[str, Tensor]:
        z = self.heads["projector"](self.encoder.features(self._views(x)))  # (2B, d) = g(f(views))
        z1, z2 = z.chunk(2)
        loss = nt_xent(z1, z2, self.temperature)
        with torch.no_grad():
            logits, positive = contrastive_logits(z1.detach(), z2.detach(), self.temperature)
            acc = (logits.argmax(1) == positive).float().mean()  # the positive is the most similar of 2B − 1
        return {"_loss": loss, "loss": loss, "acc": acc, "z_std": embedding_std(z1.detach()), "phase": self._phase_t()}

    def byol_step(self, x: Tensor) -> dict[str, Tensor]:
        v = self._views(x)
        z = self.heads["projector"](self.encoder.features(v))  # (2B, d) online projections
        q = self.heads["predictor"](z) if self.use_predictor else z  # (2B, d) online predictions
        with torch.no_grad():
            z_t = self.target["projector"](self.target["encoder"].features(v))  # (2B, d) target projections
        q1, q2 = q.chunk(2)
        t1, t2 = z_t.chunk(2)
        loss = byol_loss(q1, t2) + byol_loss(q2, t1)  # each view predicts the other view's target
        return {"_loss": loss, "loss": loss, "z_std": embedding_std(z[:len(x)].detach()), "phase": self._phase_t()}

    @torch.no_grad()
    def update_target(self) -> None:
        """θ′ ← τ·θ′ + (1 − τ)·θ for the target's weights; batch-norm statistics copied."""
        online = (self.encoder, self.heads["projector"])
        target = (self.target["encoder"], self.target["projector"])
        for o, t in zip(online, target):
            for p_t, p in zip(t.parameters(), o.parameters()):
                p_t.lerp_(p, 1 - self.ema)
            for b_t, b in zip(t.buffers(), o.buffers()):
                b_t.copy_(b)

    def barlow_step(self, x: Tensor) -> dict[str, Tensor]:
        z = self.heads["projector"](self.encoder.features(self._views(x)))  # (2B, d)
        z1, z2 = z.chunk(2)
        loss = barlow_twins_loss(z1, z2, self.lambda_offdiag)
        return {"_loss": loss, "loss": loss, "z_std": embedding_std(z1.detach()), "phase": self._phase_t()}

    def rotnet_step(self, x: Tensor) -> dict[str, Tensor]:
        rotated, k = rotate_all(self._augment(x))  # (4B, C, H, W), (4B,)
        h = self.encoder.features(self.prepare(rotated))  # (4B, D)
        logits = self.heads["rotation"](h)  # (4B, 4)
        loss = F.cross_entropy(logits, k)
        return {"_loss": loss, "loss": loss, "acc": (logits.argmax(1) == k).float().mean().detach(),
                "z_std": embedding_std(h[:len(x)].detach()), "phase": self._phase_t()}

    def jigsaw_step(self, x: Tensor) -> dict[str, Tensor]:
        tiles = jigsaw_tiles(self._augment(x), self.grid, self.generator)  # (B, T, C, 16, 16)
        shown, k = shuffle_tiles(tiles, self.perms, self.generator)  # slot i shows tile perms[k, i]
        B, T = shown.shape[:2]
        f = self.encoder.features(shown.flatten(0, 1).contiguous(memory_format=torch.channels_last))  # (B·T, d)
        logits = self.heads["jigsaw"](f.view(B, T, -1))  # (B, P)
        loss = F.cross_entropy(logits, k)
        return {"_loss": loss, "loss": loss, "acc": (logits.argmax(1) == k).float().mean().detach(),
                "z_std": embedding_std(f.detach()), "phase": self._phase_t()}

    def colorization_step(self, x: Tensor) -> dict[str, Tensor]:
        x = self._augment(x)
        grey = luma(x).expand(-1, 3, -1, -1)  # (B, 3, H, W): the colour taken away
        h = self.encoder.features(self.prepare(grey))  # (B, D)
        pred = self.heads["decoder"](h).view(-1, 3, COLOR_MAP, COLOR_MAP)  # (B, 3, 8, 8) chroma
        loss = F.mse_loss(pred, chroma_target(x))
        return {"_loss": loss, "loss": loss, "z_std": embedding_std(h.detach()), "phase": self._phase_t()}

    def supervised_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        logits = self.encoder(self.prepare(self._augment(x)))  # (B, classes): the CNN with its linear head
        loss = F.cross_entropy(logits, y)
        return {"_loss": loss, "loss": loss, "acc": (logits.argmax(1) == y).float().mean().detach(),
                "phase": self._phase_t()}

    def _phase_t(self, value: float = PRETRAIN) -> Tensor:
        return torch.tensor(value, device=self.device)

    # -- the probe phase -----------------------------------------------------------------
    @torch.no_grad()
    def features(self, encoder: nn.Module, x: Tensor) -> Tensor:
        """h of images x in evaluation mode, in chunks: (N, C, H, W) -> (N, D)."""
        was = encoder.training
        encoder.eval()
        out = [self.encode(encoder, x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)]
        encoder.train(was)
        return torch.cat(out).float()

    def encode(self, encoder: nn.Module, x: Tensor) -> Tensor:
        """h of images x, read as the method trained the encoder to see them: colorization's on
        the grey image; Jigsaw's, which saw only tiles, on the whole image enlarged to the
        tiles' scale and standardised like a tile, the last two blocks' maps averaged over
        positions (block 4 saw a whole tile, block 3 its quarters); the others' on the image.
        (n, C, H, W) -> (n, D)."""
        if self.method == "jigsaw":
            u = at_tile_scale(x, self.grid).contiguous(memory_format=torch.channels_last)  # (n, C, 2H, 2W)
            pooled = []
            for block in encoder.blocks:
                u = block(u)  # (n, C_k, H_k, W_k)
                pooled.append(u.mean(dim=(2, 3)))  # (n, C_k)
            return torch.cat(pooled[-2:], dim=1)  # (n, C_3 + C_4)
        if self.method == "colorization":
            x = luma(x).expand(-1, 3, -1, -1)  # (n, 3, H, W) grey, as in pretraining
        return encoder.features(self.prepare(x))  # (n, D)

    @torch.no_grad()
    def _feature_sets(self, x: Tensor) -> dict[str, Tensor]:
        """The probes' inputs for images x: h, z (when there is a head) and the random-init h."""
        out = {"h": self.features(self.encoder, x)}
        if self.has_z:
            projector = self.heads["projector"]
            was = projector.training
            projector.eval()
            out["z"] = torch.cat([projector(out["h"][i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)]).float()
            projector.train(was)
        if "random" in getattr(self, "probes", {}):
            out["random"] = self.features(self.random_encoder, x)
        return out

    def probe_data(self) -> dict[str, Tensor]:
        """The labelled images' features, clean and `probe_views` augmented copies (flip and
        shift, drawn from their own generator: the same after a resume), standardised with
        their own mean and std; built once, since the encoder no longer changes."""
        if self._probe_data is None:
            x = self.data.train.x[self.labelled]
            copies = [x]
            if self.probe_views and self.augment_cfg.active:
                aug = Augmenter(self.augment_cfg, self.config.train.seed * 1_000_003 + PROBE_SEED_OFFSET, self.device)
                copies += [aug(x) for _ in range(self.probe_views)]
            sets = self._feature_sets(torch.cat(copies))
            data: dict[str, Tensor] = {"y": self.data.train.y[self.labelled].repeat(len(copies))}  # labels: the probe's only
            for name, f in sets.items():
                mean, std = f.mean(0), f.std(0).clamp_min(1e-6)
                data[name], data[f"{name}_mean"], data[f"{name}_std"] = (f - mean) / std, mean, std
            self._probe_data = data
        return self._probe_data

    def probe_step(self) -> dict[str, Tensor]:
        """probe_iters full-batch updates of every linear probe (cross-entropy on the frozen features)."""
        if not self.probe_started:
            self.probe_started = True
            if self.device.type == "cuda":
                torch.cuda.synchronize()
        d = self.probe_data()
        y = d["y"]
        for _ in range(self.probe_iters):
            logits = {name: probe(d[name]) for name, probe in self.probes.items()}
            losses = {name: F.cross_entropy(lg, y) for name, lg in logits.items()}
            self.probe_opt.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            self.probe_opt.step()
        out = {"loss": losses["h"].detach(), "acc": (logits["h"].argmax(1) == y).float().mean()}
        for name in ("z", "random"):
            if name in logits:
                out[f"{name}_acc"] = (logits[name].argmax(1) == y).float().mean()
        out["phase"] = self._phase_t(PROBE)
        return out

    # -- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        t0 = time.perf_counter()
        val = self.data.val
        probing = self.probe_started
        if probing and self._val_frozen is not None:
            sets = self._val_frozen
        else:
            sets = self._feature_sets(val.x)
            if probing:
                self._val_frozen = sets
        out: dict[str, float] = {}
        if self.method == "supervised":
            logits = torch.cat([self._eval_logits(val.x[i:i + EVAL_BATCH]) for i in range(0, len(val), EVAL_BATCH)])
            out["val_loss"] = F.cross_entropy(logits, val.y).item()
            out["val_acc"] = (logits.argmax(1) == val.y).float().mean().item()
        elif probing:
            d = self.probe_data()
            for name, probe in self.probes.items():
                probe.eval()
                logits = probe((sets[name] - d[f"{name}_mean"]) / d[f"{name}_std"])
                probe.train()
                key = "val_acc" if name == "h" else f"val_{name}_acc"
                out[key] = (logits.argmax(1) == val.y).float().mean().item()
                if name == "h":
                    out["val_loss"] = F.cross_entropy(logits, val.y).item()
        out["val_knn_acc"] = self._knn_accuracy(sets["h"])
        emb = sets["z"] if self.has_z else sets["h"]
        out["val_z_std"] = embedding_std(emb).item()
        if not probing:
            self.pretrain_seconds += time.perf_counter() - t0
        if self.method != "random":
            out["val_pretrain_seconds"] = round(self.pretrain_seconds, 2)
        self._val_h = sets["h"]
        self.last_eval = out
        return out

    def _eval_logits(self, x: Tensor) -> Tensor:
        self.encoder.eval()
        logits = self.encoder(self.prepare(x))
        self.encoder.train()
        return logits.float()

    def _knn_accuracy(self, val_h: Tensor) -> float:
        """The kNN monitor: each validation image takes the majority class of its knn_k most
        cosine-similar labelled images (their clean features); labels read only here."""
        if self._probe_data is not None:
            n = len(self.labelled)
            bank = self._probe_data["h"][:n] * self._probe_data["h_std"] + self._probe_data["h_mean"]  # the clean copies
        else:
            bank = self.features(self.encoder, self.data.train.x[self.labelled])
        labels = self.data.train.y[self.labelled]
        k = min(self.knn_k, len(bank))
        sim = F.normalize(val_h, dim=1) @ F.normalize(bank, dim=1).T  # (N_val, K)
        nearest = sim.topk(k, dim=1).indices  # (N_val, k)
        votes = F.one_hot(labels[nearest], self.data.num_classes).sum(1)  # (N_val, classes)
        return (votes.argmax(1) == self.data.val.y).float().mean().item()

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["ssl"] = {
            "generator": self.generator.get_state(),
            "spread": torch.stack(self.spread).cpu() if self.spread else torch.zeros(0),
            "pretrain_seconds": self.pretrain_seconds,
            "pretrain_epochs": self.pretrain_epochs,
            "probe_started": self.probe_started,
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        s = state["ssl"]
        self.generator.set_state(s["generator"])
        self.spread = [v for v in s["spread"].to(self.device)]
        self.pretrain_seconds = float(s["pretrain_seconds"])
        self.probe_started = bool(s["probe_started"])
        self._probe_data = self._val_frozen = None
        if self.probe_started:  # more epochs for a run that is probing: more probing, not more pretraining
            self.pretrain_epochs = int(s["pretrain_epochs"])

    # -- pictures and the table ----------------------------------------------------------
    def pictures(self, epoch: int, final: bool) -> list[PictureReady | TableReady]:
        from dlcourse_tui.tasks.ssl_pictures import collapse_chart, pca_picture, views_picture

        out: list[PictureReady | TableReady] = []
        if epoch <= self.config.train.eval_every and self.method not in BASELINES:
            title, pixels = views_picture(self)
            out.append(PictureReady("views", title, epoch, pixels))
        if self.spread:
            d = self.d_monitor
            out.append(PictureReady("collapse", "collapse monitor: mean per-dimension std of the ℓ2-normalised "
                                    f"embedding per pretraining step (dashed: 1/√d = {1 / math.sqrt(d):.3f}, spread "
                                    "evenly; 0: every image at one point)", epoch,
                                    collapse_chart(torch.stack(self.spread).tolist(), d)))
        out.append(PictureReady("pca", "frozen features h of the validation images, PCA to 2-D, coloured by their "
                                "true class (no label was used to make them)" if self.method != "supervised" else
                                "features h of the validation images, PCA to 2-D, coloured by their true class", epoch,
                                pca_picture(self._val_h, self.data.val.y, self.data.classes)))
        if final:
            from dlcourse_tui.tasks.ssl_pictures import comparison_table

            out.append(comparison_table(self))
        return out

    def tables(self) -> list[TableReady]:
        if self.method != "jigsaw":
            return []
        rows = tuple((str(i), " ".join(str(int(t)) for t in p)) for i, p in enumerate(self.perms[:12].tolist()))
        return [TableReady("permutations", f"the jigsaw's {self.n_perms} permutations (first 12; slot i shows tile p[i]), "
                           f"smallest Hamming distance between two: {min_hamming(self.perms.cpu())} of "
                           f"{self.grid ** 2}", ("index", "permutation"), rows)]

