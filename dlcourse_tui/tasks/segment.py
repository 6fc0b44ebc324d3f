"""Semantic segmentation: a class for every pixel, trained with per-pixel cross-entropy.

A dense model (FCN, SegNet, U-Net) maps a batch (B, 3, H, W) to scores (B, C, H, W) and is
trained on whole images. The sliding window (a model with `classify_patches`) is trained
on patches around sampled pixels (half of them on objects, so the background does not
swamp the rest) and labels an image by classifying every pixel's patch.

Evaluation accumulates one confusion matrix over the whole validation set (tasks/metrics.py)
and reports val_miou (the mean IoU over background and the 10 classes), val_pixel_acc and
val_loss; the training side logs each batch's miou and pixel_acc (means of per-batch
numbers, a rougher gauge). Pictures: rows of image | truth | prediction with a legend, and
the data itself (scenes with masks and boxes). Tables: before training, every segmentation
model's parameters and inference speed on this machine (the sliding window against the
FCN); after the last epoch, this run's model | params | images/s | mIoU and its IoU per class.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.models.catalog import MODELS
from dlcourse_tui.models.registry import count_params, create_model
from dlcourse_tui.tasks.base import Task
from dlcourse_tui.tasks.dense import (PICTURE_SCALE, Standardise, batched_updates, batch_generator, check_masks,
                                      epoch_batches, scenes_picture_of, timed_images_per_second)
from dlcourse_tui.tasks.metrics import ConfusionMatrix, confusion_matrix, iou_per_class

EVAL_BATCH = 200  # validation images per forward pass
PICTURE_ROWS = 4


def batch_miou(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """0-d tensor: the mIoU of one batch (classes absent from it left out), on the device."""
    iou = iou_per_class(confusion_matrix(pred, target, num_classes))  # (C,) NaN where absent
    return iou.nanmean().float()


def class_log_prior(masks: Tensor, num_classes: int) -> Tensor:
    """log of each class's share of the training pixels (C,), never below log 1e-4."""
    counts = torch.bincount(masks.reshape(-1).long(), minlength=num_classes)[:num_classes].double()  # (C,)
    return (counts / counts.sum().clamp_min(1)).clamp_min(1e-4).log().float()


class SegmentTask(Task):
    """One model, one optimiser, per-pixel cross-entropy; mIoU from a confusion matrix."""

    def build(self) -> None:
        cfg, data = self.config, self.data
        check_masks(data)
        self.class_names = ("background",) + tuple(data.classes)
        self.num_classes = len(self.class_names)
        self.use_model(create_model(cfg.model, input_shape=data.input_shape, num_classes=self.num_classes,
                                    args=cfg.model_args,
                                    strict={k[6:] for k in cfg.explicit if k.startswith("model.")}).to(self.device))
        batched_updates(self.optimizer)
        if hasattr(self.model, "set_class_prior") and bool(cfg.task_args.get("prior_init", True)):
            self.model.set_class_prior(class_log_prior(data.train.extras["masks"], self.num_classes))
        self.prepare = Standardise(data, self.device)
        self.patches = hasattr(self.model, "classify_patches")
        args = cfg.task_args
        self.patches_per_image = int(args.get("patches_per_image", 16))
        self.foreground_share = float(args.get("foreground_share", 0.5))
        self.eval_images = int(args.get("eval_images", 0)) or len(data.val)  # the sliding window is slow: fewer
        self.speed_table = bool(args.get("speed_table", True))
        self.images_per_s: float | None = None  # measured at the last evaluation
        self.pictured_data = False

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train) / self.config.train.batch_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, ...]]:
        train, cfg = self.data.train, self.config.train
        masks = train.extras["masks"]
        for i, idx in epoch_batches(len(train), cfg.batch_size, cfg.seed, epoch, self.device, start, self.steps_per_epoch()):
            x, m = train.x[idx], masks[idx]  # (B, 3, H, W) uint8, (B, H, W) uint8
            if not self.patches:
                yield x, m
                continue
            g = batch_generator(self.config.train.seed, epoch, i)
            fg = (m > 0).flatten(1).float().cpu()  # (B, H·W)
            share = fg.mean(1, keepdim=True).clamp(1e-3, 1 - 1e-3)  # (B, 1) the image's foreground fraction
            weight = torch.where(fg > 0, self.foreground_share / share, (1 - self.foreground_share) / (1 - share))
            where = torch.multinomial(weight, self.patches_per_image, replacement=True, generator=g)  # (B, k)
            yield x, m, where.to(self.device)

    def examples_in(self, batch: tuple[Tensor, ...]) -> int:
        return len(batch[0]) * (batch[2].shape[1] if len(batch) == 3 else 1)

    def _patches_at(self, x: Tensor, where: Tensor) -> Tensor:
        """The P×P patches (N, 3, P, P) of standardised images x (B, 3, H, W) centred on the
        pixels where (B, k) (flat indices), zero-padded at the border as in forward."""
        p = self.model.patch_size
        half = p // 2
        b, _, h, w = x.shape
        padded = F.pad(x, (half, half, half, half))  # (B, 3, H + P − 1, W + P − 1)
        rows, cols = (where // w).flatten(), (where % w).flatten()  # (N,) top-left in padded coordinates
        img = torch.arange(b, device=x.device).repeat_interleave(where.shape[1])  # (N,)
        steps = torch.arange(p, device=x.device)  # (P,)
        r, c = rows[:, None] + steps, cols[:, None] + steps  # (N, P)
        return padded[img[:, None, None], :, r[:, :, None], c[:, None, :]].permute(0, 3, 1, 2)  # (N, 3, P, P)

    def train_step(self, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x = self.prepare(batch[0])  # (B, 3, H, W)
        if self.patches:
            _, m, where = batch
            target = m.flatten(1).gather(1, where).flatten().long()  # (N,) the centre pixels' labels
            logits = self.model.classify_patches(self._patches_at(x, where))  # (N, C)
        else:
            target = batch[1].long()  # (B, H, W)
            logits = self.model(x)  # (B, C, H, W)
        loss = F.cross_entropy(logits, target)
        self.update(loss)
        with torch.no_grad():
            pred = logits.max(1).indices  # argmax(1) over a (B, C, H, W) tensor is 4× slower on a CPU
            out = {"loss": loss.detach(), "pixel_acc": (pred == target).float().mean()}
            if not self.patches:
                out["miou"] = batch_miou(pred, target, self.num_classes)
        return out

    @torch.inference_mode()
    def predict(self, x: Tensor) -> Tensor:
        """Scores (B, C, H, W) of uint8 images x (B, 3, H, W), in evaluation mode."""
        self.model.eval()
        return self.model(self.prepare(x))

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        val = self.data.val
        n = min(self.eval_images, len(val))
        cm = ConfusionMatrix(self.num_classes, self.device)
        loss_sum = torch.zeros((), device=self.device)
        seconds = 0.0
        step = EVAL_BATCH if not self.patches else 8
        for i in range(0, n, step):
            x, m = val.x[i:min(n, i + step)], val.extras["masks"][i:min(n, i + step)].long()
            t0 = time.perf_counter()
            logits = self.predict(x)  # (B, C, H, W)
            pred = logits.max(1).indices  # argmax(1) over a (B, C, H, W) tensor is 4× slower on a CPU
            if pred.device.type == "cuda":
                torch.cuda.synchronize(pred.device)
            seconds += time.perf_counter() - t0
            loss_sum += F.cross_entropy(logits, m, reduction="sum") / m[0].numel()
            cm.update(pred, m)
        self.images_per_s = n / max(seconds, 1e-9)
        scores = cm.scores()
        self.last_iou = scores["iou"]
        return {"val_loss": loss_sum.item() / n, "val_miou": scores["miou"], "val_pixel_acc": scores["pixel_acc"]}

    # -- pictures and tables ---------------------------------------------------------
    def pictures(self, epoch: int, final: bool) -> list[PictureReady | TableReady]:
        """The predictions (and, the first time and at the end, the data); after the last
        epoch also this run's table and its IoU per class (the trainer passes on whatever
        comes back here, so tables made from the finished model go out with its pictures)."""
        out: list[PictureReady | TableReady] = [
            PictureReady("segmentation", "image | ground truth | prediction", epoch, self.prediction_picture())]
        if final or not self.pictured_data:
            self.pictured_data = True
            out.append(PictureReady("scenes", "the data: images, semantic masks, instances and boxes", epoch,
                                    scenes_picture_of(self.data.val, self.class_names)))
        if final:
            out += self.final_tables()
        return out

    @torch.inference_mode()
    def prediction_picture(self) -> np.ndarray:
        from dlcourse_tui.render.overlay import class_colors, color_mask, hstack, legend, titled, vstack
        from dlcourse_tui.render.images import upscale

        val = self.data.val
        k = min(PICTURE_ROWS, len(val))
        pred = self.predict(val.x[:k]).max(1).indices.cpu().numpy()  # (k, H, W)
        truth = val.extras["masks"][:k].cpu().numpy()
        images = val.x[:k].permute(0, 2, 3, 1).cpu().numpy()
        colors = class_colors(self.num_classes)
        rows = []
        for i in range(k):
            cells = [upscale(images[i], PICTURE_SCALE), upscale(color_mask(truth[i], colors), PICTURE_SCALE),
                     upscale(color_mask(pred[i], colors), PICTURE_SCALE)]
            if i == 0:
                cells = [titled(c, t) for c, t in zip(cells, ("image", "ground truth", "prediction"))]
            rows.append(hstack(cells))
        body = vstack(rows, gap=6)
        return vstack([body, legend(list(self.class_names), colors, width=body.shape[1])])

    def final_tables(self) -> list[TableReady]:
        miou = sum(v for v in self.last_iou if v == v) / max(1, sum(v == v for v in self.last_iou))
        speed = f"{self.images_per_s:,.0f}" if self.images_per_s else "—"
        run = TableReady("segmentation_result", f"this run on {self.data.name} (inference measured over the validation "
                         f"images on {self.device})", ("model", "params", "inference images/s", "mIoU"),
                         ((self.config.model, f"{count_params(self.model):,}", speed, f"{miou:.3f}"),))
        rows = tuple((name, "—" if v != v else f"{v:.3f}") for name, v in zip(self.class_names, self.last_iou))
        per_class = TableReady("iou_per_class", "IoU per class on the validation set (from one confusion matrix)",
                               ("class", "IoU"), rows)
        return [run, per_class]

    def tables(self) -> list[TableReady]:
        if not self.speed_table:
            return []
        return [self.speed_comparison()]

    def speed_comparison(self) -> TableReady:
        """Every segmentation model at its default settings (this run's model with the run's):
        parameters and inference images/s on a few validation images, untrained (the cost of a
        forward pass does not depend on the weights), against the FCN."""
        names = [n for n, (task, _) in MODELS.items() if task == "segment"]
        x = self.data.val.x[:4]
        rates: dict[str, tuple[int, float]] = {}
        with torch.random.fork_rng(devices=[]):  # building the other models must not move the run's random stream
            for name in names:
                model = self.model if name == self.config.model else create_model(
                    name, input_shape=self.data.input_shape, num_classes=self.num_classes).to(self.device)
                was_training = model.training
                model.eval()
                with torch.inference_mode():
                    if hasattr(model, "classify_patches"):  # patches/s over H·W patches an image (an image's worth is slow)
                        p, (h, w) = model.patch_size, x.shape[-2:]
                        patches = torch.randn(512, x.shape[1], p, p, device=self.device)
                        rate = timed_images_per_second(model.classify_patches, patches, min_seconds=0.05) / (h * w)
                    else:
                        rate = timed_images_per_second(lambda b: model(self.prepare(b)), x, min_seconds=0.05)
                model.train(was_training)
                rates[name] = (count_params(model), rate)
        ref = rates.get("fcn", (0, 0.0))[1]
        rows = tuple((name, f"{p:,}", f"{r:,.1f}" if r < 10 else f"{r:,.0f}",
                      f"{ref / r:,.1f}× the FCN's time" if ref and name != "fcn" else "") for name, (p, r) in rates.items())
        return TableReady("segmentation_speed", f"inference on {self.device}, {tuple(x.shape[1:])} images, untrained "
                          "weights (each model at its defaults; a forward pass costs the same whatever the weights)",
                          ("model", "params", "images/s", "slower by"), rows)
