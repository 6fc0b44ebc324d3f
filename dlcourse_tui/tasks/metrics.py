"""Metrics of dense prediction, written out by hand for teaching and shared by the lessons:
segmentation (a confusion matrix, IoU per class, mIoU, pixel accuracy) and detection
(matching detections to ground truth, average precision, mAP).

Segmentation. Accumulate one confusion matrix over the whole validation set,
cm[t, p] = number of pixels of true class t predicted as p, then per class

    IoU_c = TP / (TP + FP + FN) = cm[c, c] / (Σ_p cm[c, p] + Σ_t cm[t, c] − cm[c, c])

and mIoU = the mean of IoU_c over the classes that occur (in the truth or the
predictions). The mean of per-batch mIoUs is a different number (a batch without a
class scores it 0 or leaves it out, and small batches weigh as much as big ones).
tests/test_segment_detect.py checks it against torchmetrics' MulticlassJaccardIndex.

Detection, at one IoU threshold (0.5 for "mAP@0.5"). For each class: sort all its
detections over the whole set by score; walk down the list, and in each detection's image
match it to the unmatched ground-truth box of that class it overlaps most, if that IoU is
≥ the threshold (a true positive, TP), else it is a false positive (FP: a duplicate, a
poor box, or nothing there). After k detections, precision = TP_k / k and recall =
TP_k / (number of ground-truth boxes). AP is the area under the precision-recall curve,
with precision first made monotone (p_interp(r) = max over r' ≥ r of p(r')):

- "all-point" (PASCAL VOC 2010 and later, the default here): the exact area under that
  step curve, Σ_k (r_k − r_{k−1}) · p_interp(r_k);
- "coco101" (COCO, and torchmetrics' MeanAveragePrecision): the mean of p_interp at the
  101 recalls 0, 0.01, …, 1 (p_interp = 0 beyond the largest recall reached);
- "voc11" (PASCAL VOC 2007): the same mean at 11 recalls 0, 0.1, …, 1.

mAP is the mean AP over the classes that have ground truth. Tools differ on the same
detections because of that interpolation (all-point vs 101 vs 11 points: a few points
of AP apart, most on short lists), how many detections per image they keep (COCO: the 100
best), whether a detection may fall back to its second-best ground truth (COCO and this
module do; the VOC devkit counts it FP when its best match is taken), "difficult" or
"crowd" boxes that count neither way, areas with or without VOC's +1 pixel, ties in
scores, and even how the 101 recall points are rounded (numpy's linspace in pycocotools,
torch.linspace in torchmetrics' default: 10 of them differ in the last bit, which moves a
class's AP by up to 1/101 when a recall lands exactly on one). tests/test_segment_detect.py checks "coco101" against torchmetrics to 1e-6
and "all-point" against a brute-force area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dlcourse_tui.models.boxes import box_iou, check_boxes, check_iou_threshold

# ---------------------------------------------------------------------------- segmentation


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """cm (C, C) int64 with cm[t, p] = pixels of true class t predicted as p.

    pred and target: integer label maps of the same shape, e.g. (B, H, W); pixels whose
    target is ignore_index are left out."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    t, p = target.reshape(-1).long(), pred.reshape(-1).long()  # (P,)
    if ignore_index is not None:
        keep = t != ignore_index
        t, p = t[keep], p[keep]
    if t.numel() and (min(int(t.min()), int(p.min())) < 0 or max(int(t.max()), int(p.max())) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    return torch.bincount(t * num_classes + p, minlength=num_classes * num_classes).view(num_classes, num_classes)


def iou_per_class(cm: Tensor) -> Tensor:
    """(C,) float64 IoU of each class from a confusion matrix; NaN where a class occurs
    neither in the truth nor in the predictions (it has no IoU)."""
    cm = cm.double()
    tp = cm.diagonal()  # (C,)
    union = cm.sum(0) + cm.sum(1) - tp  # (C,) TP + FP + FN
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def mean_iou(cm: Tensor) -> float:
    """mIoU: the mean IoU over the classes that occur."""
    iou = iou_per_class(cm)
    present = ~iou.isnan()
    return float(iou[present].mean()) if present.any() else float("nan")


def pixel_accuracy(cm: Tensor) -> float:
    """The fraction of pixels labelled right: trace / total."""
    total = cm.sum()
    return float(cm.diagonal().sum().double() / total) if total > 0 else float("nan")


class ConfusionMatrix:
    """A running confusion matrix on `device`: update with each batch, read once at the end."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", ignore_index: int | None = None) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: Tensor, target: Tensor) -> None:
        """pred, target: (B, H, W) label maps (or any equal shapes)."""
        self.cm += confusion_matrix(pred, target, self.num_classes, self.ignore_index).to(self.cm.device)

    def scores(self) -> dict[str, float | list[float]]:
        """{"miou", "pixel_acc", "iou": [per class, NaN where absent]}."""
        cm = self.cm.cpu()
        return {"miou": mean_iou(cm), "pixel_acc": pixel_accuracy(cm), "iou": iou_per_class(cm).tolist()}


# ---------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class Detections:
    """One image's detections: boxes (N, 4) xyxy, scores (N,), labels (N,) int64."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        check_boxes(self.boxes)
        n = self.boxes.shape[0]
        if self.boxes.ndim != 2 or self.scores.shape != (n,) or self.labels.shape != (n,):
            raise ValueError(f"detections need boxes (N, 4), scores (N,) and labels (N,), got "
                             f"{tuple(self.boxes.shape)}, {tuple(self.scores.shape)}, {tuple(self.labels.shape)}")


@dataclass(frozen=True)
class GroundTruth:
    """One image's ground truth: boxes (M, 4) xyxy, labels (M,) int64."""

    boxes: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        check_boxes(self.boxes)
        if self.boxes.ndim != 2 or self.labels.shape != self.boxes.shape[:1]:
            raise ValueError(f"ground truth needs boxes (M, 4) and labels (M,), got "
                             f"{tuple(self.boxes.shape)} and {tuple(self.labels.shape)}")


def match_image(det: Detections, gt: GroundTruth, iou_threshold: float) -> Tensor:
    """(N,) bool: which detections of one image are true positives. Class by class, in
    decreasing score, each takes the unmatched ground truth of its class it overlaps most,
    if that IoU is at least iou_threshold."""
    tp = torch.zeros(len(det.scores), dtype=torch.bool)
    if not len(det.scores) or not len(gt.labels):
        return tp
    iou = box_iou(det.boxes.double().cpu(), gt.boxes.double().cpu())  # (N, M)
    iou[det.labels.cpu()[:, None] != gt.labels.cpu()[None, :]] = -1.0  # other classes never match
    order = torch.sort(det.scores.cpu(), descending=True, stable=True).indices.tolist()
    rows = iou.tolist()
    taken = [False] * len(gt.labels)
    for i in order:
        best, best_j = iou_threshold, -1
        for j, v in enumerate(rows[i]):
            if not taken[j] and v >= best:
                best, best_j = v, j
        if best_j >= 0:
            taken[best_j] = True
            tp[i] = True
    return tp


def precision_recall(scores: Tensor, tp: Tensor, n_gt: int) -> tuple[Tensor, Tensor]:
    """Precision and recall (K,) float64 after each of K detections sorted by decreasing score."""
    order = torch.sort(scores.double(), descending=True, stable=True).indices  # (K,)
    hits = tp[order].double()  # (K,)
    tp_cum = hits.cumsum(0)  # (K,)
    precision = tp_cum / torch.arange(1, len(hits) + 1, dtype=torch.float64)  # (K,)
    recall = tp_cum / max(n_gt, 1)  # (K,)
    return precision, recall


INTERPOLATIONS = ("all-point", "coco101", "voc11")


def average_precision(scores: Tensor, tp: Tensor, n_gt: int, interpolation: str = "all-point") -> float:
    """AP of one class from its detections' scores (K,) and TP flags (K,) over the whole set,
    and the number of its ground-truth boxes; NaN when n_gt is 0."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation={interpolation!r}: use one of {', '.join(INTERPOLATIONS)}")
    if n_gt == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    precision, recall = precision_recall(scores, tp, n_gt)
    envelope = precision.flip(0).cummax(0).values.flip(0)  # (K,) p_interp at each k: the best precision at or after it
    if interpolation == "all-point":
        previous = torch.cat([recall.new_zeros(1), recall[:-1]])  # (K,) r_{k-1}
        return float(((recall - previous) * envelope).sum())
    # the recall points as pycocotools makes them (numpy's linspace); torch.linspace, which torchmetrics' default
    # rec_thresholds come from, rounds 10 of the 101 differently, and a recall landing exactly on one (3/10) then
    # reads another precision: up to 1/101 of a class's AP
    points = torch.from_numpy(np.linspace(0.0, 1.0, 101 if interpolation == "coco101" else 11))  # (R,) float64
    first = torch.searchsorted(recall, points, side="left")  # (R,) the first k reaching each recall
    reached = first < len(recall)
    return float(torch.where(reached, envelope[first.clamp_max(len(recall) - 1)], torch.zeros_like(points)).mean())


def detection_ap(detections: list[Detections], truths: list[GroundTruth], num_classes: int,
                 iou_threshold: float = 0.5, interpolation: str = "all-point") -> Tensor:
    """AP per class (C,) float64 at one IoU threshold over a whole set of images (NaN for a
    class without ground truth); its nanmean is the mAP (see mean_ap)."""
    check_iou_threshold(iou_threshold)
    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} images of detections but {len(truths)} of ground truth")
    flags = [match_image(d, g, iou_threshold) for d, g in zip(detections, truths)]
    scores = torch.cat([d.scores.double().cpu() for d in detections]) if detections else torch.zeros(0, dtype=torch.float64)
    labels = torch.cat([d.labels.cpu() for d in detections]) if detections else torch.zeros(0, dtype=torch.long)
    tp = torch.cat(flags) if flags else torch.zeros(0, dtype=torch.bool)
    gt_labels = torch.cat([g.labels.cpu() for g in truths]) if truths else torch.zeros(0, dtype=torch.long)
    n_gt = torch.bincount(gt_labels, minlength=num_classes)[:num_classes].tolist()
    return torch.tensor([average_precision(scores[labels == c], tp[labels == c], n_gt[c], interpolation)
                         for c in range(num_classes)], dtype=torch.float64)


def mean_ap(per_class: Tensor) -> float:
    """The mean of the per-class APs over the classes that have ground truth."""
    present = ~per_class.isnan()
    return float(per_class[present].mean()) if present.any() else float("nan")
