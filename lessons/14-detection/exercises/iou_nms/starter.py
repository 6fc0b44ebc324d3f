"""IoU and non-maximum suppression (lesson: detection)."""

import torch
from torch import Tensor


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every box in a with every box in b.

    a: (N, 4), b: (M, 4), boxes as (x1, y1, x2, y2) with x1 ≤ x2 and y1 ≤ y2

    inter_ij = max(0, min(x2_i, x2_j) − max(x1_i, x1_j)) · max(0, min(y2_i, y2_j) − max(y1_i, y1_j))
    IoU_ij   = inter_ij / (area_i + area_j − inter_ij)      (0 when the union is empty)

    Returns (N, M).
    """
    raise NotImplementedError  # your code here


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression.

    boxes: (N, 4) x1 y1 x2 y2, scores: (N,), iou_threshold in (0, 1)

    Sort by score, best first. Take the best box left and keep it; drop every remaining box
    whose IoU with it is above iou_threshold; repeat until no box is left.

    Returns the indices (K,) of the kept boxes (int64), by decreasing score, as
    torchvision.ops.nms does.
    """
    raise NotImplementedError  # your code here
