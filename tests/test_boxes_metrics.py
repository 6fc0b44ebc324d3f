"""The hand-written box ops and metrics agree with their oracles: torchvision.ops for IoU
and NMS, torchmetrics for mIoU (MulticlassJaccardIndex) and AP (MeanAveragePrecision with
a COCO backend); and all-point AP equals the exact area under the interpolated curve."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from dlcourse_tui.models.boxes import (batched_nms, box_iou, check_iou_threshold, decode_boxes, encode_boxes, nms)
from dlcourse_tui.tasks.metrics import (ConfusionMatrix, Detections, GroundTruth, average_precision, confusion_matrix,
                                        detection_ap, iou_per_class, mean_ap, mean_iou, pixel_accuracy)


def random_boxes(n: int, g: torch.Generator, size: float = 64.0) -> torch.Tensor:
    """(n, 4) xyxy boxes of 4..32 pixels inside a size × size image."""
    wh = 4 + 28 * torch.rand(n, 2, generator=g)  # (n, 2)
    xy = torch.rand(n, 2, generator=g) * (size - wh)  # (n, 2)
    return torch.cat([xy, xy + wh], dim=1)


# ---------------------------------------------------------------------------- IoU and NMS


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_box_iou_matches_torchvision(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a, b = random_boxes(40, g), random_boxes(30, g)
    b[0] = a[0]  # identical: IoU 1
    b[1] = torch.tensor([100.0, 100.0, 110.0, 110.0])  # far away: IoU 0
    ours = box_iou(a, b)
    assert ours.shape == (40, 30)
    assert torch.allclose(ours, torchvision.ops.box_iou(a, b), atol=1e-6)
    assert ours[0, 0] == pytest.approx(1.0) and (ours[:, 1] == 0).all()


def test_box_iou_by_hand() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])  # area 4
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0]])  # overlap 1 of union 7; inside: 1 of 4
    assert box_iou(a, b).tolist() == [[pytest.approx(1 / 7), pytest.approx(1 / 4)]]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_torchvision(seed: int, threshold: float) -> None:
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(120, g, size=48.0)  # crowded: many overlaps
    scores = torch.rand(120, generator=g)
    assert torch.equal(nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold))
    labels = torch.randint(0, 4, (120,), generator=g)
    assert torch.equal(batched_nms(boxes, scores, labels, threshold),
                       torchvision.ops.batched_nms(boxes, scores, labels, threshold))


def test_iou_thresholds_outside_zero_one_are_refused() -> None:
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            nms(torch.zeros(1, 4), torch.zeros(1), bad)
    assert check_iou_threshold(0.5) == 0.5
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        box_iou(torch.zeros(3, 5), torch.zeros(2, 4))


def test_box_encoding_round_trips() -> None:
    g = torch.Generator().manual_seed(0)
    boxes, anchors = random_boxes(50, g), random_boxes(50, g)
    assert torch.allclose(decode_boxes(encode_boxes(boxes, anchors), anchors), boxes, atol=1e-4)


# ---------------------------------------------------------------------------- segmentation


@pytest.mark.parametrize("seed", [0, 1])
def test_miou_from_one_confusion_matrix_matches_torchmetrics(seed: int) -> None:
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    g = torch.Generator().manual_seed(seed)
    c = 6
    target = torch.randint(0, c - 1, (5, 3, 16, 16), generator=g)  # class 5 never in the truth …
    pred = torch.where(torch.rand(target.shape, generator=g) < 0.6, target, torch.randint(0, c - 1, target.shape, generator=g))
    pred[0, 0, 0, 0] = c - 1  # … but predicted once; and the batches below leave classes out
    oracle = MulticlassJaccardIndex(num_classes=c, average="macro")
    per_class = MulticlassJaccardIndex(num_classes=c, average="none")
    acc = MulticlassAccuracy(num_classes=c, average="micro")
    cm = ConfusionMatrix(c)
    for p, t in zip(pred, target):  # batch by batch: one matrix over all of them
        cm.update(p, t)
        oracle.update(p, t)
        per_class.update(p, t)
        acc.update(p, t)
    scores = cm.scores()
    assert scores["miou"] == pytest.approx(float(oracle.compute()), abs=1e-6)
    assert scores["iou"] == pytest.approx(per_class.compute().tolist(), abs=1e-6)
    assert scores["pixel_acc"] == pytest.approx(float(acc.compute()), abs=1e-6)
    # the mean of per-batch mIoUs is another, wrong number
    batch_mean = sum(mean_iou(confusion_matrix(p, t, c)) for p, t in zip(pred, target)) / len(pred)
    assert abs(batch_mean - scores["miou"]) > 1e-4


def test_absent_classes_have_no_iou() -> None:
    cm = confusion_matrix(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]), 3)
    assert cm.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
    iou = iou_per_class(cm)
    assert iou[:2].tolist() == [pytest.approx(0.5), pytest.approx(0.5)] and math.isnan(iou[2])
    assert mean_iou(cm) == pytest.approx(0.5) and pixel_accuracy(cm) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(torch.zeros(2, 3), torch.zeros(3, 2), 3)


# ---------------------------------------------------------------------------- average precision


def test_average_precision_by_hand() -> None:
    # 2 objects; by decreasing score the detections are TP, FP, TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    scores, tp = torch.tensor([0.9, 0.8, 0.7]), torch.tensor([True, False, True])
    # all-point: the envelope is 1 up to recall 1/2, then 2/3: AP = 0.5·1 + 0.5·2/3
    assert average_precision(scores, tp, 2, "all-point") == pytest.approx(0.5 + 1 / 3)
    # COCO: 51 recall points (0 … 0.5) at precision 1, 50 (0.51 … 1) at 2/3
    assert average_precision(scores, tp, 2, "coco101") == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert average_precision(scores, tp, 2, "voc11") == pytest.approx((6 + 5 * 2 / 3) / 11)
    assert math.isnan(average_precision(scores, tp, 0)) and average_precision(scores[:0], tp[:0], 3) == 0.0


def exact_area(scores: torch.Tensor, tp: torch.Tensor, n_gt: int) -> float:
    """The area under the interpolated precision-recall step curve, point by point (independent code)."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    hits, recalls, precisions = 0, [], []
    for k, i in enumerate(order, start=1):
        hits += bool(tp[i])
        recalls.append(hits / n_gt)
        precisions.append(hits / k)
    area, previous = 0.0, 0.0
    for k, r in enumerate(recalls):
        area += (r - previous) * max(precisions[k:])
        previous = r
    return area


def random_detection_set(seed: int, images: int = 12, classes: int = 4):
    """Ground truth and noisy detections (jittered true boxes, duplicates and false alarms)."""
    g = torch.Generator().manual_seed(seed)
    dets, truths = [], []
    for _ in range(images):
        m = int(torch.randint(1, 5, (1,), generator=g))
        gt = random_boxes(m, g)
        gl = torch.randint(0, classes, (m,), generator=g)
        keep = torch.rand(m, generator=g) < 0.8  # some objects are missed
        found = gt[keep] + 4 * torch.randn(int(keep.sum()), 4, generator=g)  # poor boxes too
        dup = gt[:1] + torch.randn(1, 4, generator=g)  # a duplicate of the first object
        noise = random_boxes(int(torch.randint(0, 4, (1,), generator=g)), g)  # false alarms
        boxes = torch.cat([found, dup, noise])
        x0y0 = torch.minimum(boxes[:, :2], boxes[:, 2:] - 1)
        boxes = torch.cat([x0y0, torch.maximum(boxes[:, 2:], x0y0 + 1)], dim=1)
        labels = torch.cat([gl[keep], gl[:1], torch.randint(0, classes, (len(noise),), generator=g)])
        labels = torch.where(torch.rand(len(labels), generator=g) < 0.1, (labels + 1) % classes, labels)  # wrong class
        dets.append(Detections(boxes, torch.rand(len(boxes), generator=g), labels))
        truths.append(GroundTruth(gt, gl))
    return dets, truths


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_all_point_ap_is_the_exact_area(seed: int) -> None:
    from dlcourse_tui.tasks.metrics import match_image

    dets, truths = random_detection_set(seed)
    per_class = detection_ap(dets, truths, 4, 0.5, "all-point")
    flags = torch.cat([match_image(d, t, 0.5) for d, t in zip(dets, truths)])
    scores, labels = torch.cat([d.scores for d in dets]), torch.cat([d.labels for d in dets])
    gl = torch.cat([t.labels for t in truths])
    for c in range(4):
        sel = labels == c
        n_gt = int((gl == c).sum())
        want = exact_area(scores[sel], flags[sel], n_gt) if n_gt else float("nan")
        assert per_class[c].item() == pytest.approx(want, abs=1e-9, nan_ok=True)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_coco_ap_matches_torchmetrics_mean_average_precision(seed: int) -> None:
    backend = "faster_coco_eval"
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        backend = "pycocotools"
        pytest.importorskip("pycocotools", reason="MeanAveragePrecision needs faster-coco-eval or pycocotools")
    from torchmetrics.detection import MeanAveragePrecision

    import numpy as np

    dets, truths = random_detection_set(seed)
    # pycocotools' own 101 recall points (numpy's linspace); torchmetrics' default comes from torch.linspace, which
    # rounds 10 of them differently: a recall landing exactly on one (3/10 = 0.3) then reads another precision
    points = np.linspace(0.0, 1.0, 101).tolist()
    oracle = MeanAveragePrecision(iou_thresholds=[0.5], rec_thresholds=points, class_metrics=True, backend=backend)
    oracle.update([{"boxes": d.boxes, "scores": d.scores, "labels": d.labels} for d in dets],
                  [{"boxes": t.boxes, "labels": t.labels} for t in truths])
    want = oracle.compute()
    ours = detection_ap(dets, truths, 4, 0.5, "coco101")
    assert mean_ap(ours) == pytest.approx(float(want["map"]), abs=1e-6)
    by_class = dict(zip(want["classes"].tolist(), want["map_per_class"].tolist()))
    for c, ap in enumerate(ours.tolist()):
        if c in by_class and by_class[c] >= 0:
            assert ap == pytest.approx(by_class[c], abs=1e-6), c
    # the VOC2010+ all-point AP of the same detections differs, by a little
    assert abs(mean_ap(detection_ap(dets, truths, 4, 0.5, "all-point")) - mean_ap(ours)) < 0.05
