"""Object detection: boxes, classes and scores, trained with each detector's own loss.

A detector (models/detect.py) gives `loss(x, boxes, labels)` for a batch and
`detect(x, score_threshold, iou_threshold)` for images. Batches carry the padded ground
truth of Split.extras: boxes (B, K, 4) xyxy and box_labels (B, K), −1 where no object.

Evaluation decodes every validation image (score threshold task.score_threshold, then
per-class NMS at task.nms_iou), matches the detections to the ground truth at IoU ≥
task.match_iou and computes AP per class and mAP (tasks/metrics.py): val_map50 with the
all-point interpolation of PASCAL VOC 2010+ (the lesson's target), val_map50_coco with
COCO's 101 points (what torchmetrics reports) beside it, and val_loss. Pictures: the
predicted boxes with class and score beside the ground truth; for a grid detector the
grid with the cells responsible for one image's objects and their base boxes; for two
stages the proposals; and the data itself. Tables: before training, every detector's
parameters and images/s; after the last epoch, this run's detector | params | images/s |
mAP@0.5 and the AP of each class.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.errors import UserError
from dlcourse_tui.models.boxes import check_iou_threshold
from dlcourse_tui.models.catalog import MODELS
from dlcourse_tui.models.registry import count_params, create_model
from dlcourse_tui.tasks.base import Task
from dlcourse_tui.tasks.dense import (PICTURE_SCALE, Standardise, batched_updates, check_boxes_fit, epoch_batches,
                                      scenes_picture_of, timed_images_per_second)
from dlcourse_tui.tasks.metrics import Detections, GroundTruth, detection_ap, mean_ap

EVAL_BATCH = 100
PICTURE_ROWS = 4
SHOW_SCORE = 0.3  # boxes drawn in the pictures score at least this


def ground_truth(boxes: Tensor, labels: Tensor) -> list[GroundTruth]:
    """Padded (B, K, 4) and (B, K) → one GroundTruth per image (the −1 slots dropped)."""
    return [GroundTruth(b[l >= 0].float().cpu(), l[l >= 0].cpu()) for b, l in zip(boxes, labels)]


class DetectTask(Task):
    """One detector, one optimiser; mAP@0.5 over the validation set."""

    def build(self) -> None:
        cfg, data = self.config, self.data
        check_boxes_fit(data)
        args = cfg.task_args
        try:
            self.nms_iou = check_iou_threshold(float(args.get("nms_iou", 0.5)), "task.nms_iou")
            self.match_iou = check_iou_threshold(float(args.get("match_iou", 0.5)), "task.match_iou")
        except ValueError as e:
            raise UserError(f"{e}.") from None
        self.score_threshold = float(args.get("score_threshold", 0.05))
        if not 0.0 <= self.score_threshold < 1.0:
            raise UserError(f"task.score_threshold={self.score_threshold:g} must be in [0, 1), e.g. 0.05.")
        self.eval_images = int(args.get("eval_images", 0)) or len(data.val)
        self.speed_table = bool(args.get("speed_table", True))
        self.class_names = tuple(data.classes)
        self.use_model(create_model(cfg.model, input_shape=data.input_shape, num_classes=len(self.class_names),
                                    args=cfg.model_args,
                                    strict={k[6:] for k in cfg.explicit if k.startswith("model.")}).to(self.device))
        batched_updates(self.optimizer)
        self.prepare = Standardise(data, self.device)
        self.images_per_s: float | None = None
        self.last_ap: list[float] = []
        self.pictured_data = False

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train) / self.config.train.batch_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        train, cfg = self.data.train, self.config.train
        for _, idx in epoch_batches(len(train), cfg.batch_size, cfg.seed, epoch, self.device, start, self.steps_per_epoch()):
            yield train.x[idx], train.extras["boxes"][idx], train.extras["box_labels"][idx]

    def train_step(self, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        x, boxes, labels = batch
        losses = self.model.loss(self.prepare(x), boxes, labels)
        self.update(losses["loss"])
        return {k: v.detach() for k, v in losses.items()}

    @torch.inference_mode()
    def detect(self, x: Tensor, score_threshold: float | None = None) -> list[Detections]:
        """Detections (boxes, scores, labels on the CPU) for uint8 images x (B, 3, H, W)."""
        self.model.eval()
        dets = self.model.detect(self.prepare(x), self.score_threshold if score_threshold is None else score_threshold,
                                 self.nms_iou)
        return [Detections(d.boxes.float().cpu(), d.scores.float().cpu(), d.labels.cpu()) for d in dets]

    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        val = self.data.val
        n = min(self.eval_images, len(val))
        dets: list[Detections] = []
        seconds = 0.0
        for i in range(0, n, EVAL_BATCH):
            x = val.x[i:min(n, i + EVAL_BATCH)]
            t0 = time.perf_counter()
            dets += self.detect(x)
            seconds += time.perf_counter() - t0
        self.images_per_s = n / max(seconds, 1e-9)
        truths = ground_truth(val.extras["boxes"][:n], val.extras["box_labels"][:n])
        k = len(self.class_names)
        ap = detection_ap(dets, truths, k, self.match_iou, "all-point")
        ap101 = detection_ap(dets, truths, k, self.match_iou, "coco101")
        self.last_ap, self.last_ap101 = ap.tolist(), ap101.tolist()
        loss_sum, seen = 0.0, 0
        self.model.eval()
        with torch.random.fork_rng(devices=[]):  # a loss that samples must not move the run's random stream
            for i in range(0, n, EVAL_BATCH):
                j = min(n, i + EVAL_BATCH)
                loss = self.model.loss(self.prepare(val.x[i:j]), val.extras["boxes"][i:j], val.extras["box_labels"][i:j])
                loss_sum += float(loss["loss"]) * (j - i)
                seen += j - i
        return {"val_loss": loss_sum / max(seen, 1), "val_map50": mean_ap(ap), "val_map50_coco": mean_ap(ap101)}

    # -- pictures and tables ---------------------------------------------------------
    def pictures(self, epoch: int, final: bool) -> list[PictureReady | TableReady]:
        """Detections beside the truth, the model's own picture (the grid, or proposals),
        the data the first time and at the end; after the last epoch also this run's
        tables (the trainer passes on whatever comes back here)."""
        out: list[PictureReady | TableReady] = [
            PictureReady("detections", f"predicted boxes after NMS (score ≥ {SHOW_SCORE:g}) | ground truth", epoch,
                         self.detection_picture())]
        if hasattr(self.model, "responsibilities"):
            out.append(PictureReady("grid", f"the {self.model.cfg.grid}×{self.model.cfg.grid} grid: each object's "
                                    "responsible cell (shaded), its centre and its base box (dashed)", epoch,
                                    self.grid_picture()))
        if hasattr(self.model, "proposals_of"):
            out.append(PictureReady("proposals", "the region proposals the second stage classifies", epoch,
                                    self.proposals_picture()))
        if final or not self.pictured_data:
            self.pictured_data = True
            out.append(PictureReady("scenes", "the data: images, semantic masks, instances and boxes", epoch,
                                    scenes_picture_of(self.data.val, ("background",) + self.class_names)))
        if final:
            out += self.final_tables()
        return out

    def _box_texts(self, d: Detections) -> list[str]:
        return [f"{self.class_names[int(l)]} {float(s):.2f}" for l, s in zip(d.labels, d.scores)]

    def detection_picture(self) -> np.ndarray:
        from dlcourse_tui.render.images import upscale
        from dlcourse_tui.render.overlay import draw_boxes, hstack, titled, vstack

        val = self.data.val
        k = min(PICTURE_ROWS, len(val))
        dets = self.detect(val.x[:k], score_threshold=SHOW_SCORE)
        truths = ground_truth(val.extras["boxes"][:k], val.extras["box_labels"][:k])
        images = val.x[:k].permute(0, 2, 3, 1).cpu().numpy()
        rows = []
        for i in range(k):
            big = upscale(images[i], PICTURE_SCALE)
            pred = draw_boxes(big, dets[i].boxes.numpy(), (dets[i].labels + 1).tolist(), self._box_texts(dets[i]),
                              scale=PICTURE_SCALE)
            t = truths[i]
            true = draw_boxes(big, t.boxes.numpy(), (t.labels + 1).tolist(),
                              [self.class_names[int(l)] for l in t.labels], scale=PICTURE_SCALE)
            cells = [pred, true]
            if i == 0:
                cells = [titled(pred, "prediction"), titled(true, "ground truth")]
            rows.append(hstack(cells))
        return vstack(rows, gap=6)

    @torch.inference_mode()
    def grid_picture(self) -> np.ndarray:
        from dlcourse_tui.render.images import upscale
        from dlcourse_tui.render.overlay import draw_box, draw_boxes, draw_dot, draw_grid, hstack, shade_cells, titled

        val = self.data.val
        i = int((val.extras["box_labels"][:32] >= 0).sum(1).argmax())  # a scene with many objects, the same every time
        x = val.x[i:i + 1]
        boxes, labels = val.extras["boxes"][i:i + 1].float(), val.extras["box_labels"][i:i + 1]
        s = self.model.cfg.grid
        t = self.model.responsibilities(boxes.to(self.device), labels.to(self.device), x.shape[-1])
        obj = t["obj"][0].cpu()  # (S, S, nB)
        cells = [(int(r), int(c)) for r, c in obj.any(dim=2).nonzero().tolist()]
        side = x.shape[-1]
        big = upscale(x[0].permute(1, 2, 0).cpu().numpy(), PICTURE_SCALE)
        pic = draw_grid(shade_cells(big, s, cells), s, (150, 150, 150))
        real = labels[0] >= 0
        pic = draw_boxes(pic, boxes[0][real].numpy(), (labels[0][real] + 1).tolist(), scale=PICTURE_SCALE, width=1)
        base = self.model.base.cpu()
        for r, c, j in obj.nonzero().tolist():
            cx, cy = (c + t["xy"][0, r, c, j, 0].item()) * side / s, (r + t["xy"][0, r, c, j, 1].item()) * side / s
            half = base[j].item() * side / 2
            pic = draw_box(pic, (cx - half, cy - half, cx + half, cy + half), (255, 255, 255), scale=PICTURE_SCALE,
                           dashed=True)
            pic = draw_dot(pic, (cx, cy), (255, 255, 255), scale=PICTURE_SCALE)
        self.model.eval()
        out = self.model(self.prepare(x))  # (1, S, S, 5B + C)
        conf = self.model.split(out)[2][0].sigmoid().amax(dim=2).cpu().numpy()  # (S, S) the best confidence per cell
        from dlcourse_tui.render.images import colormap

        heat = upscale(colormap(conf, 0.0, 1.0, kind="viridis"), side * PICTURE_SCALE // s)
        heat = draw_grid(heat, s, (90, 90, 90))
        return hstack([titled(pic, "responsible cells and base boxes"), titled(heat, "predicted confidence per cell")])

    @torch.inference_mode()
    def proposals_picture(self) -> np.ndarray:
        from dlcourse_tui.render.images import upscale
        from dlcourse_tui.render.overlay import draw_boxes, hstack, titled

        self.model.eval()
        val = self.data.val
        x = self.prepare(val.x[:2])
        obj, deltas = self.model(x)
        props = self.model.proposals_of(obj, deltas, x.shape[-2], x.shape[-1])
        cells = []
        for i, p in enumerate(props):
            big = upscale(val.x[i].permute(1, 2, 0).cpu().numpy(), PICTURE_SCALE)
            top = p[:12].cpu().numpy()
            cells.append(titled(draw_boxes(big, top, [0] * len(top), scale=PICTURE_SCALE, width=1,
                                           colors=np.array([[255, 255, 255]], dtype=np.uint8)),
                                f"the {len(top)} best proposals"))
        return hstack(cells)

    def final_tables(self) -> list[TableReady]:
        speed = f"{self.images_per_s:,.0f}" if self.images_per_s else "—"
        present = [v for v in self.last_ap if v == v]
        m = sum(present) / max(1, len(present))
        run = TableReady("detection_result", f"this run on {self.data.name} (images/s: detection with NMS over the "
                         f"validation images on {self.device})", ("detector", "params", "images/s", "mAP@0.5"),
                         ((self.config.model, f"{count_params(self.model):,}", speed, f"{m:.3f}"),))
        rows = tuple((name, "—" if a != a else f"{a:.3f}", "—" if c != c else f"{c:.3f}")
                     for name, a, c in zip(self.class_names, self.last_ap, self.last_ap101))
        per_class = TableReady("ap_per_class", f"AP per class at IoU ≥ {self.match_iou:g} on the validation set",
                               ("class", "AP (all-point, VOC2010+)", "AP (101-point, COCO)"), rows)
        return [run, per_class]

    def tables(self) -> list[TableReady]:
        return [self.speed_comparison()] if self.speed_table else []

    def speed_comparison(self) -> TableReady:
        """Every detector at its default settings (this run's with the run's): parameters and
        images/s of detection (forward, decoding, NMS) on a few validation images, untrained."""
        names = [n for n, (task, _) in MODELS.items() if task == "detect"]
        x = self.prepare(self.data.val.x[:4])
        rows = []
        with torch.random.fork_rng(devices=[]):  # building the other models must not move the run's random stream
            for name in names:
                model = self.model if name == self.config.model else create_model(
                    name, input_shape=self.data.input_shape, num_classes=len(self.class_names)).to(self.device)
                was_training = model.training
                model.eval()
                with torch.inference_mode():
                    batch = x[:1] if hasattr(model, "pyramid_windows") else x  # one image is hundreds of windows
                    rate = timed_images_per_second(lambda b: model.detect(b, self.score_threshold, self.nms_iou), batch,
                                                   min_seconds=0.05)
                model.train(was_training)
                rows.append((name, f"{count_params(model):,}", f"{rate:,.1f}" if rate < 10 else f"{rate:,.0f}"))
        return TableReady("detection_speed", f"detection on {self.device}, {tuple(x.shape[1:])} images, untrained "
                          "weights (each detector at its defaults)", ("detector", "params", "images/s"), tuple(rows))
