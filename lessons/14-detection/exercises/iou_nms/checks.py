"""Checks of box_iou and nms: shapes and values against the reference and against
torchvision.ops, touching and disjoint boxes, and hidden ones (many random boxes, ties)."""

import torch
from torchvision.ops import box_iou as tv_box_iou
from torchvision.ops import nms as tv_nms

from dlcourse_tui.exercises.checking import CheckFailed, check, expect_close, expect_tensor, seeded


def random_boxes(n: int, seed: int, size: float = 64.0) -> torch.Tensor:
    g = seeded(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * size  # (n, 2) top-left corners
    wh = 4 + torch.rand(n, 2, generator=g, dtype=torch.float64) * size / 3  # (n, 2)
    return torch.cat([xy, xy + wh], dim=1)  # (n, 4) xyxy


def expect_indices(name: str, got, want: torch.Tensor, inputs: dict) -> None:
    if not isinstance(got, torch.Tensor) or got.dtype != torch.int64:
        raise CheckFailed(f"{name} must be an int64 tensor of indices, got {type(got).__name__}"
                          + (f" of {got.dtype}" if isinstance(got, torch.Tensor) else ""), [])
    if got.tolist() != want.tolist():
        raise CheckFailed(f"{name} keeps {got.tolist()}, but greedy NMS keeps {want.tolist()} (best score first)", [])


@check("box_iou returns (N, M) and agrees with the reference on two hand-made pairs")
def iou_small(mine, ref) -> None:
    a = torch.tensor([[0.0, 0, 10, 10], [5, 5, 15, 15]], dtype=torch.float64)
    b = torch.tensor([[0.0, 0, 10, 10], [10, 0, 20, 10], [20, 20, 30, 30]], dtype=torch.float64)
    inputs = {"a": a, "b": b}
    got = expect_tensor("iou", mine.box_iou(a.clone(), b.clone()), (2, 3), inputs)
    expect_close("iou", got, ref.box_iou(a, b), inputs)


@check("box_iou agrees with torchvision.ops.box_iou on 20 × 30 random boxes")
def iou_random(mine, ref) -> None:
    a, b = random_boxes(20, seed=1), random_boxes(30, seed=2)
    inputs = {"a": a, "b": b}
    expect_close("iou", mine.box_iou(a.clone(), b.clone()), tv_box_iou(a, b), inputs)


@check("nms keeps the boxes torchvision.ops.nms keeps, in its order")
def nms_small(mine, ref) -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [21, 21, 31, 31], [0, 0, 9, 9]],
                         dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95, 0.3], dtype=torch.float64)
    expect_indices("nms", mine.nms(boxes.clone(), scores.clone(), 0.5), tv_nms(boxes, scores, 0.5),
                   {"boxes": boxes, "scores": scores})


@check("200 random boxes at thresholds 0.3 and 0.7", hidden=True)
def nms_random(mine, ref) -> None:
    boxes = random_boxes(200, seed=3)
    scores = torch.rand(200, generator=seeded(4), dtype=torch.float64)
    for t in (0.3, 0.7):
        expect_indices(f"nms (threshold {t})", mine.nms(boxes.clone(), scores.clone(), t), tv_nms(boxes, scores, t),
                       {"boxes": boxes, "scores": scores})


@check("boxes that only touch, or do not meet, have IoU 0", hidden=True)
def iou_disjoint(mine, ref) -> None:
    a = torch.tensor([[0.0, 0, 10, 10]], dtype=torch.float64)
    b = torch.tensor([[10.0, 0, 20, 10], [30, 30, 40, 40], [0, 10, 10, 20]], dtype=torch.float64)
    expect_close("iou", mine.box_iou(a.clone(), b.clone()), torch.zeros(1, 3, dtype=torch.float64), {"a": a, "b": b})
