"""IoU and non-maximum suppression (lesson: detection): the reference."""

import torch
from torch import Tensor


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU (N, M) of a (N, 4) with b (M, 4), xyxy boxes."""
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2)
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2)
    wh = (bottom_right - top_left).clamp_min(0)  # (N, M, 2)
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])  # (N,)
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # (M,)
    union = area_a[:, None] + area_b[None, :] - inter  # (N, M)
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(inter))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices (K,) of the boxes greedy NMS keeps, by decreasing score."""
    order = torch.sort(scores, descending=True, stable=True).indices  # (N,) best first
    iou = box_iou(boxes[order], boxes[order])  # (N, N) in that order
    alive = torch.ones(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if alive[i]:
            keep.append(int(order[i]))
            alive &= iou[i] <= iou_threshold  # drop what overlaps the kept box too much
    return torch.tensor(keep, dtype=torch.int64)
