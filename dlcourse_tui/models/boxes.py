"""Box geometry written out by hand for teaching: area, IoU, non-maximum suppression, and
the R-CNN box parametrisation. Shared by the detectors (models/detect.py), the detection
task and its metrics (tasks/metrics.py), and the later lessons.

Boxes are (x0, y0, x1, y1) in pixels ("xyxy", pixel-edge coordinates: a box covering pixel
columns 3..5 has x0 = 3, x1 = 6), with x0 <= x1 and y0 <= y1. No "+1" in areas: the
PASCAL VOC devkit's (x1 − x0 + 1)(y1 − y0 + 1) belongs to integer pixel-index boxes.

    IoU(A, B) = |A ∩ B| / |A ∪ B| = inter / (area(A) + area(B) − inter)

tests/test_segment_detect.py checks box_iou and nms against torchvision.ops.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_boxes(boxes: Tensor, name: str = "boxes") -> Tensor:
    """ValueError unless `boxes` is a floating (..., 4) tensor; returns it."""
    if not isinstance(boxes, Tensor) or boxes.ndim < 1 or boxes.shape[-1] != 4:
        shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"{name} must be (..., 4) as (x0, y0, x1, y1), got shape {shape}")
    if not boxes.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {boxes.dtype}")
    return boxes


def box_area(boxes: Tensor) -> Tensor:
    """(..., 4) -> (...): width · height (0 for an empty box)."""
    check_boxes(boxes)
    return (boxes[..., 2] - boxes[..., 0]).clamp_min(0) * (boxes[..., 3] - boxes[..., 1]).clamp_min(0)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every box in a (N, 4) with every box in b (M, 4): (N, M). Two empty boxes give 0."""
    check_boxes(a, "a")
    check_boxes(b, "b")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"box_iou takes (N, 4) and (M, 4), got {tuple(a.shape)} and {tuple(b.shape)}")
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2) the intersection's corner
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2)
    wh = (bottom_right - top_left).clamp_min(0)  # (N, M, 2) zero where the boxes do not meet
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter  # (N, M)
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(inter))


def check_iou_threshold(value: float, name: str = "iou_threshold") -> float:
    """ValueError unless 0 < value < 1 (0 keeps one box in all, 1 suppresses nothing)."""
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name}={value:g} must lie strictly between 0 and 1, e.g. 0.5")
    return float(value)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression: indices (K,) of the boxes kept, by decreasing score.

    Take the highest-scoring box left, keep it, drop every remaining box whose IoU with it
    is above iou_threshold; repeat until no box is left. boxes (N, 4), scores (N,).
    """
    check_boxes(boxes)
    check_iou_threshold(iou_threshold)
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores {tuple(scores.shape)} must be (N,) for boxes {tuple(boxes.shape)}")
    order = torch.sort(scores, descending=True, stable=True).indices  # (N,) best first
    overlaps = (box_iou(boxes[order], boxes[order]) > iou_threshold).tolist()  # N lists of N: i suppresses j
    suppressed = [False] * len(order)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)  # the best box still standing
        row = overlaps[i]
        for j in range(i + 1, len(order)):
            if row[j]:
                suppressed[j] = True
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)] if keep else order[:0]


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each class separately (a cat never suppresses a dog): indices (K,) kept,
    by decreasing score. Shifting each class's boxes by its own offset, farther than any
    box reaches, makes boxes of different classes disjoint, so one nms does all classes."""
    check_boxes(boxes)
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offset = labels.to(boxes.dtype)[:, None] * (boxes.max() - boxes.min() + 1)  # (N, 1)
    return nms(boxes + offset, scores, iou_threshold)


def box_centres(boxes: Tensor) -> Tensor:
    """(..., 4) xyxy -> (..., 4) (cx, cy, w, h)."""
    wh = boxes[..., 2:] - boxes[..., :2]  # (..., 2)
    return torch.cat([boxes[..., :2] + wh / 2, wh], dim=-1)


def box_corners(cxcywh: Tensor) -> Tensor:
    """(..., 4) (cx, cy, w, h) -> (..., 4) xyxy."""
    half = cxcywh[..., 2:] / 2  # (..., 2)
    return torch.cat([cxcywh[..., :2] - half, cxcywh[..., :2] + half], dim=-1)


def encode_boxes(boxes: Tensor, anchors: Tensor) -> Tensor:
    """The R-CNN regression targets of boxes relative to anchors (both (..., 4) xyxy):

        tx = (x − x_a) / w_a,  ty = (y − y_a) / h_a,  tw = log(w / w_a),  th = log(h / h_a)

    with (x, y) centres and (w, h) sizes; decode_boxes inverts it."""
    b, a = box_centres(boxes), box_centres(anchors)  # (..., 4) each
    a_wh = a[..., 2:].clamp_min(1e-6)  # (..., 2)
    t_xy = (b[..., :2] - a[..., :2]) / a_wh  # (..., 2)
    t_wh = torch.log(b[..., 2:].clamp_min(1e-6) / a_wh)  # (..., 2)
    return torch.cat([t_xy, t_wh], dim=-1)


MAX_LOG_SCALE = 4.0  # exp(4) ≈ 55: a delta cannot blow a box up without bound


def decode_boxes(deltas: Tensor, anchors: Tensor) -> Tensor:
    """Boxes (..., 4) xyxy from deltas (tx, ty, tw, th) applied to anchors (..., 4) xyxy:
    x = x_a + w_a tx, w = w_a exp(tw) (so a negative tw shrinks the box, never flips it)."""
    a = box_centres(anchors)  # (..., 4)
    xy = a[..., :2] + deltas[..., :2] * a[..., 2:]  # (..., 2)
    wh = a[..., 2:] * torch.exp(deltas[..., 2:].clamp(-MAX_LOG_SCALE, MAX_LOG_SCALE))  # (..., 2)
    return box_corners(torch.cat([xy, wh], dim=-1))


def clip_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """Boxes (..., 4) cut to the image [0, width] × [0, height]."""
    x = boxes[..., 0::2].clamp(0, width)  # (..., 2)
    y = boxes[..., 1::2].clamp(0, height)  # (..., 2)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)
