"""Object detectors of chapter 2: boxes with a class and a score for every object.

Every detector here has `loss(x, boxes, labels)`, a dict of named losses with "loss" their
total, for standardised images x (B, 3, H, W) and padded ground truth boxes (B, K, 4) xyxy
with labels (B, K) (-1 where there is no object), and `detect(x, score_threshold,
iou_threshold)`, one Detections per image after a score threshold and per-class NMS.

- `window_det`, the sliding window: a small CNN classifies a P×P window into background
  or one of the classes. Run over every window of an image pyramid (the image rescaled by
  a few factors, a P×P window slid over each with a stride: windows of P/s pixels of the
  original, each cropped and resized to P×P), then NMS. Nothing is shared between the
  overlapping windows, and a box can only be one of the windows.
- `rcnn`, two stages in the R-CNN family (Girshick et al. 2014; Fast R-CNN, Girshick 2015;
  Faster R-CNN, Ren et al. 2015): a shared convolutional backbone; a region proposal
  network scores anchors (base boxes at every cell of the stride-8 map) as object or not
  and regresses them into proposals; each proposal's features are cut from the stride-4
  map with RoIAlign (torchvision.ops.roi_align) into 7×7, and a head classifies them
  (background or a class) and refines the box.
- `yolo`, one stage (Redmon et al. 2016, "You Only Look Once", with YOLOv2's base boxes):
  the backbone shrinks the image to an S×S grid; every cell predicts, for each of B base
  boxes, (dx, dy, dw, dh, confidence), plus C class scores: an S×S×(5B + C) output. A
  ground-truth box is the responsibility of the cell holding its centre, and of that
  cell's base box most like it in shape. The loss, as in YOLO:

      λ_coord Σ_obj [(x − x̂)² + (y − ŷ)² + (√w − √ŵ)² + (√h − √ĥ)²]
      + Σ_obj (1 − Ĉ)² + λ_noobj Σ_noobj Ĉ²  + Σ_cells with an object CE(class)

  with λ_coord = 5 and λ_noobj = 0.5: the few boxes with an object weigh more than the
  many without. Widths and heights are safe for negative network outputs: by default
  w = w_base · exp(dw) is positive whatever dw is; with wh = "linear" (YOLOv1, which
  regresses w itself) a negative ŵ goes through sign(ŵ)·√|ŵ|, never the NaN of √ŵ.

Boxes are xyxy in pixels of the input image (models/boxes.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlcourse_tui.models.boxes import (batched_nms, box_corners, box_iou, check_iou_threshold, clip_boxes,
                                       decode_boxes, encode_boxes)
from dlcourse_tui.models.registry import register_model

DET_EXAMPLE = (3, 32, 32)  # the smoke tests' input (the lessons use 64×64 scenes)
MAX_DETECTIONS = 100  # per image, after NMS (as COCO keeps)
CONF_PRIOR = 0.02  # a grid box's confidence before training: about 2.5 objects over 8·8·2 boxes


@dataclass(frozen=True)
class ImageDetections:
    """One image's detections: boxes (N, 4) xyxy, scores (N,), labels (N,) int64 (0..C−1)."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor


def conv_bn(c_in: int, c_out: int, batch_norm: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm)]
    return layers + ([nn.BatchNorm2d(c_out)] if batch_norm else []) + [nn.ReLU(inplace=True)]


class Backbone(nn.Module):
    """[conv → BN → ReLU → 2×2 max-pool] per entry of channels but the last, then `extra`
    convs of the last width at the smallest size: a map of stride 2^(len(channels) − 1)."""

    def __init__(self, c_in: int, channels: tuple[int, ...], extra: int = 1, batch_norm: bool = True) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        for i, c in enumerate(channels):
            layers = conv_bn(c_in, c, batch_norm)
            if i == len(channels) - 1:
                for _ in range(extra):
                    layers += conv_bn(c, c, batch_norm)
            self.stages.append(nn.Sequential(*layers))
            c_in = c

    def forward(self, x: Tensor) -> list[Tensor]:
        """Each stage's map: [(B, c_0, H, W), (B, c_1, H/2, W/2), …]."""
        maps = []
        for i, stage in enumerate(self.stages):
            if i:
                x = F.max_pool2d(x, 2)
            x = stage(x)
            maps.append(x)
        return maps


def check_stride(input_shape: tuple[int, ...], halvings: int, model: str) -> None:
    """ValueError unless both image sides can be halved `halvings` times exactly."""
    if len(input_shape) != 3:
        raise ValueError(f"{model} takes images (C, H, W), not inputs of shape {input_shape}")
    step = 2 ** halvings
    if any(side % step or side < 2 * step for side in input_shape[1:]):
        raise ValueError(f"its backbone halves the image {halvings} times, so the image sides must be multiples of "
                         f"{step} and at least {2 * step}; {input_shape[1]}×{input_shape[2]} is not: use e.g. "
                         f"data.size={max(2 * step, round(input_shape[1] / step) * step)}")


def geometric_sizes(n: int, lo: float, hi: float) -> list[float]:
    """n sizes from lo to hi, evenly spaced on a log scale (one: their geometric mean)."""
    if n == 1:
        return [math.sqrt(lo * hi)]
    return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]


def pad_truth(boxes: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Check padded ground truth: boxes (B, K, 4) float, labels (B, K) int (−1: none)."""
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[:2]:
        raise ValueError(f"ground truth must be boxes (B, K, 4) and labels (B, K), got {tuple(boxes.shape)} "
                         f"and {tuple(labels.shape)}")
    if boxes.shape[1] == 0:  # no slot at all: one empty one, so every image has K ≥ 1
        boxes, labels = boxes.new_zeros(len(boxes), 1, 4), labels.new_full((len(labels), 1), -1)
    return boxes.float(), labels.long()


def batched_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of boxes a (B, N, 4) with boxes b (B, M, 4), image by image: (B, N, M)."""
    top_left = torch.maximum(a[:, :, None, :2], b[:, None, :, :2])  # (B, N, M, 2)
    bottom_right = torch.minimum(a[:, :, None, 2:], b[:, None, :, 2:])  # (B, N, M, 2)
    wh = (bottom_right - top_left).clamp_min(0)  # (B, N, M, 2)
    inter = wh[..., 0] * wh[..., 1]  # (B, N, M)
    area_a = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])).clamp_min(0)  # (B, N)
    area_b = ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])).clamp_min(0)  # (B, M)
    union = area_a[:, :, None] + area_b[:, None, :] - inter  # (B, N, M)
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(inter))


def sample_mask(candidates: Tensor, k: Tensor | int) -> Tensor:
    """Per row of candidates (B, N) bool, up to k (int or (B,)) of the True entries, chosen at
    random (the global random stream, which a resumed run restores): (B, N) bool."""
    keys = torch.where(candidates, torch.rand(candidates.shape, device=candidates.device), -1.0)  # (B, N)
    rank = keys.argsort(dim=1, descending=True).argsort(dim=1)  # (B, N) 0 for the largest key
    k = torch.as_tensor(k, device=candidates.device).reshape(-1, 1) if not isinstance(k, int) else k
    return candidates & (rank < k)


def finish_detections(boxes: Tensor, scores: Tensor, labels: Tensor, score_threshold: float,
                      iou_threshold: float, height: int, width: int) -> ImageDetections:
    """One image's candidates (N, 4), (N,), (N,): score threshold, clip, per-class NMS, the best 100."""
    keep = scores >= score_threshold
    boxes, scores, labels = clip_boxes(boxes[keep], height, width), scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, iou_threshold)[:MAX_DETECTIONS]
    return ImageDetections(boxes[keep], scores[keep], labels[keep])


# ---------------------------------------------------------------------------- sliding window


@register_model("window_det", task="detect", inputs=("image",), example_shape=DET_EXAMPLE,
                description="sliding window: a CNN classifies every window of an image pyramid, then NMS")
class WindowDetector(nn.Module):
    """window (3, P, P) → [conv → BN → ReLU → max-pool] × len(channels) → linear → background or a class."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = DET_EXAMPLE
        num_classes: int = 10
        channels: tuple[int, ...] = (16, 32, 64)
        window: int = 24  # P: the classifier's input, and the window slid over each rescaled image
        scales: tuple[float, ...] = (1.25, 1.0, 0.8, 0.64)  # the pyramid: windows of P/s pixels of the original
        stride: int = 4  # pixels between windows in each rescaled image
        negatives: int = 6  # background windows sampled per training image
        batch_norm: bool = True

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            self.channels = tuple(int(c) for c in self.channels)
            self.scales = tuple(float(s) for s in self.scales)
            if self.window // 2 ** len(self.channels) < 1:
                raise ValueError(f"window={self.window} is too small to be pooled {len(self.channels)} times")
            if not self.scales or min(self.scales) <= 0 or self.stride < 1:
                raise ValueError(f"scales={self.scales}, stride={self.stride}: give positive scales and a stride ≥ 1")
            if len(self.input_shape) != 3:
                raise ValueError(f"window_det takes images (C, H, W), not {self.input_shape}")

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in, side = cfg.input_shape[0], cfg.window
        for c in cfg.channels:
            layers += conv_bn(c_in, c, cfg.batch_norm) + [nn.MaxPool2d(2)]
            c_in, side = c, side // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * side * side, cfg.num_classes + 1)  # 0: background
        self.windows = self.pyramid_windows(cfg.input_shape[1], cfg.input_shape[2])  # (W, 4)

    def pyramid_windows(self, height: int, width: int) -> Tensor:
        """Every window (N, 4) xyxy in original pixels: a P×P window slid by `stride` over
        the image rescaled by each s is a (P/s)×(P/s) window of the original."""
        out = []
        p, st = self.cfg.window, self.cfg.stride
        for s in self.cfg.scales:
            h, w = round(height * s), round(width * s)  # the rescaled image
            if h < p or w < p:
                continue
            ys = torch.arange(0, h - p + 1, st, dtype=torch.float32)  # (ny,)
            xs = torch.arange(0, w - p + 1, st, dtype=torch.float32)  # (nx,)
            y, x = torch.meshgrid(ys, xs, indexing="ij")
            box = torch.stack([x, y, x + p, y + p], dim=-1).reshape(-1, 4)  # (ny·nx, 4) in the rescaled image
            out.append(box / torch.tensor([w / width, h / height, w / width, h / height]))
        if not out:
            raise ValueError(f"no window of {p} pixels fits the {height}×{width} image at scales {self.cfg.scales}")
        return torch.cat(out)

    def classify(self, x: Tensor, boxes: list[Tensor]) -> Tensor:
        """Scores (N, C + 1) of the windows boxes (a list of (n_i, 4) per image), each cropped
        and resized to P×P (bilinear, RoIAlign with 2×2 samples per output pixel)."""
        from torchvision.ops import roi_align  # here: importing torchvision costs every run a second

        crops = roi_align(x, boxes, output_size=self.cfg.window, spatial_scale=1.0, sampling_ratio=2, aligned=True)
        return self.head(self.features(crops).flatten(1))  # (N, 3, P, P) → (N, C + 1)

    def forward(self, x: Tensor) -> Tensor:
        """Scores (B, windows, C + 1) of every pyramid window of every image."""
        wins = self.windows.to(x.device)
        return self.classify(x, [wins] * len(x)).view(len(x), len(wins), -1)

    def loss(self, x: Tensor, boxes: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Cross-entropy on windows cut around each object (jittered: label = the class of the
        object it overlaps with IoU ≥ 0.5, else background) and on random pyramid windows
        away from every object (IoU < 0.3: background)."""
        boxes, labels = pad_truth(boxes, labels)
        b, k = labels.shape
        real = labels >= 0  # (B, K)
        # around each object: a square window of its larger side × [1, 1.3], centre moved by ≤ 15 %
        cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2  # (B, K)
        side = torch.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])  # (B, K)
        side = side * (1 + 0.3 * torch.rand(b, k, device=x.device))
        cx = cx + 0.15 * side * (2 * torch.rand(b, k, device=x.device) - 1)
        cy = cy + 0.15 * side * (2 * torch.rand(b, k, device=x.device) - 1)
        pos = box_corners(torch.stack([cx, cy, side, side], dim=-1))  # (B, K, 4)
        wins = self.windows.to(x.device)
        pick = torch.randint(0, len(wins), (b, 4 * self.cfg.negatives), device=x.device)  # (B, 4n)
        cand = wins[pick]  # (B, 4n, 4)
        far = (batched_box_iou(cand, boxes) * real[:, None, :]).amax(dim=2) < 0.3  # (B, 4n)
        neg_keep = sample_mask(far, self.cfg.negatives)  # (B, 4n)
        all_boxes = torch.cat([pos, cand], dim=1)  # (B, K + 4n, 4)
        keep = torch.cat([real, neg_keep], dim=1)  # (B, K + 4n)
        best, which = (batched_box_iou(all_boxes, boxes) * real[:, None, :]).max(dim=2)  # (B, K + 4n)
        target = torch.where(best >= 0.5, labels.gather(1, which) + 1, 0)  # (B, K + 4n) 0: background
        keep &= (best >= 0.5) | (best < 0.3)  # windows in between are neither: left out
        rois = [all_boxes[i][keep[i]] for i in range(b)]
        scores = self.classify(x, rois)  # (N, C + 1)
        loss = F.cross_entropy(scores, target[keep])
        return {"loss": loss, "cls": loss.detach()}

    @torch.no_grad()
    def detect(self, x: Tensor, score_threshold: float = 0.05, iou_threshold: float = 0.5) -> list[ImageDetections]:
        check_iou_threshold(iou_threshold)
        probs = self.forward(x).softmax(dim=2)  # (B, windows, C + 1)
        score, label = probs[..., 1:].max(dim=2)  # (B, windows): the best class that is not background
        wins = self.windows.to(x.device)
        h, w = x.shape[-2:]
        return [finish_detections(wins, score[i], label[i], score_threshold, iou_threshold, h, w) for i in range(len(x))]


# ---------------------------------------------------------------------------- two stages


@register_model("rcnn", task="detect", inputs=("image",), example_shape=DET_EXAMPLE,
                description="two stages: region proposal network, RoIAlign, classification and box refinement")
class TwoStageDetector(nn.Module):
    """backbone → RPN on the stride-8 map (anchors → objectness, deltas) → proposals →
    RoIAlign 7×7 on the stride-4 map → FC → background or a class, and box deltas."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = DET_EXAMPLE
        num_classes: int = 10
        channels: tuple[int, ...] = (16, 32, 64, 128)  # the backbone: stride 8 for the RPN, the stride-4 map for RoIs
        anchors: int = 3  # A: square base boxes per cell, 0.2 to 0.5 of the image side
        proposals: int = 32  # kept per image after the RPN's NMS
        rois_per_image: int = 32  # sampled for the second stage's loss
        hidden: int = 256  # the head's fully connected width
        roi_size: int = 7
        batch_norm: bool = True

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            self.channels = tuple(int(c) for c in self.channels)
            if len(self.channels) != 4:
                raise ValueError(f"channels={self.channels}: give four stages (strides 1, 2, 4, 8)")
            if not 1 <= self.anchors <= 9:
                raise ValueError(f"anchors={self.anchors}: give 1 to 9 base boxes per cell")
            if self.proposals < 1 or self.rois_per_image < 1:
                raise ValueError("proposals and rois_per_image must be at least 1")
            check_stride(self.input_shape, 3, "rcnn")

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        a, c = cfg.anchors, cfg.channels
        self.backbone = Backbone(cfg.input_shape[0], c, extra=1, batch_norm=cfg.batch_norm)
        self.rpn_conv = nn.Sequential(*conv_bn(c[3], c[3], cfg.batch_norm))
        self.rpn_objectness = nn.Conv2d(c[3], a, 1)  # (B, A, H/8, W/8)
        self.rpn_deltas = nn.Conv2d(c[3], 4 * a, 1)  # (B, 4A, H/8, W/8)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c[2] * cfg.roi_size ** 2, cfg.hidden), nn.ReLU(inplace=True),
                                  nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(inplace=True))
        self.cls = nn.Linear(cfg.hidden, cfg.num_classes + 1)  # 0: background
        self.box = nn.Linear(cfg.hidden, 4)  # class-agnostic refinement of the proposal
        _, h, w = cfg.input_shape
        self.register_buffer("anchor_boxes", self.make_anchors(h, w), persistent=False)  # (H/8 · W/8 · A, 4)

    DELTA_SCALE = (0.1, 0.1, 0.2, 0.2)  # second-stage targets are divided by these (as in Fast R-CNN)

    def make_anchors(self, height: int, width: int) -> Tensor:
        """Square anchors (cells · A, 4) centred on every cell of the stride-8 map, cell-major."""
        sizes = torch.tensor(geometric_sizes(self.cfg.anchors, 0.2, 0.5)) * min(height, width)  # (A,)
        ys = (torch.arange(height // 8, dtype=torch.float32) + 0.5) * 8
        xs = (torch.arange(width // 8, dtype=torch.float32) + 0.5) * 8
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")  # (H/8, W/8)
        centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2).expand(-1, len(sizes), 2)  # (cells, A, 2)
        wh = sizes[None, :, None].expand(centres.shape[0], -1, 2)  # (cells, A, 2)
        return box_corners(torch.cat([centres, wh], dim=-1)).reshape(-1, 4)  # (cells · A, 4)

    def rpn(self, x: Tensor) -> tuple[list[Tensor], Tensor, Tensor]:
        """Backbone maps, objectness logits (B, N) and deltas (B, N, 4) for the N anchors."""
        maps = self.backbone(x)
        r = self.rpn_conv(maps[3])  # (B, c3, H/8, W/8)
        b = len(x)
        obj = self.rpn_objectness(r).permute(0, 2, 3, 1).reshape(b, -1)  # (B, H/8 · W/8 · A) cell-major
        deltas = self.rpn_deltas(r).permute(0, 2, 3, 1).reshape(b, -1, 4)  # (B, N, 4)
        return maps, obj, deltas

    def proposals_of(self, obj: Tensor, deltas: Tensor, height: int, width: int) -> list[Tensor]:
        """Per image the `proposals` best boxes (n, 4) after decoding, clipping and NMS (IoU 0.7)."""
        boxes = clip_boxes(decode_boxes(deltas.detach(), self.anchor_boxes), height, width)  # (B, N, 4)
        out = []
        for i in range(len(obj)):
            top = obj[i].detach().topk(min(100, obj.shape[1])).indices  # (≤100,)
            cand, score = boxes[i, top], obj[i, top].detach()
            ok = ((cand[:, 2] - cand[:, 0]) > 1) & ((cand[:, 3] - cand[:, 1]) > 1)
            cand, score = cand[ok], score[ok]
            keep = batched_nms(cand, score, torch.zeros_like(score, dtype=torch.long), 0.7)[:self.cfg.proposals]
            out.append(cand[keep])
        return out

    def roi_head(self, feature: Tensor, rois: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Class scores (N, C + 1) and box deltas (N, 4) of the RoIs, from RoIAlign on the stride-4 map."""
        from torchvision.ops import roi_align

        pooled = roi_align(feature, rois, output_size=self.cfg.roi_size, spatial_scale=0.25, sampling_ratio=2,
                           aligned=True)  # (N, c2, 7, 7)
        h = self.head(pooled)  # (N, hidden)
        return self.cls(h), self.box(h)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The RPN's outputs: objectness (B, N) and deltas (B, N, 4) for the N anchors."""
        _, obj, deltas = self.rpn(x)
        return obj, deltas

    def loss(self, x: Tensor, boxes: Tensor, labels: Tensor) -> dict[str, Tensor]:
        boxes, labels = pad_truth(boxes, labels)
        b, k = labels.shape
        h, w = x.shape[-2:]
        real = labels >= 0  # (B, K)
        maps, obj, deltas = self.rpn(x)
        anchors = self.anchor_boxes  # (N, 4)
        # -- stage 1: anchors with IoU ≥ 0.5 (and each object's best anchor) are objects, < 0.3 are not
        iou = batched_box_iou(anchors.expand(b, -1, -1), boxes) * real[:, None, :]  # (B, N, K)
        best, which = iou.max(dim=2)  # (B, N)
        best_anchor = iou.argmax(dim=1)  # (B, K): every object gets at least its best anchor
        hits = torch.zeros(b, len(anchors), dtype=torch.long, device=x.device).scatter_add_(1, best_anchor, real.long())
        positive = (best >= 0.5) | (hits > 0)  # (B, N)
        negative = (best < 0.3) & ~positive
        pos = sample_mask(positive, 16)  # (B, N) at most 16 objects …
        neg = sample_mask(negative, 64 - pos.sum(1))  # … and the rest of 64 background anchors per image
        rpn_cls = F.binary_cross_entropy_with_logits(obj[pos | neg], pos[pos | neg].float())
        matched = boxes.gather(1, which[..., None].expand(-1, -1, 4))  # (B, N, 4) each anchor's object
        target = encode_boxes(matched, anchors.expand(b, -1, -1))  # (B, N, 4)
        rpn_box = F.smooth_l1_loss(deltas[pos], target[pos], beta=1 / 9) if pos.any() else deltas.sum() * 0
        # -- stage 2: proposals plus the true boxes, labelled by IoU, a quarter of them objects
        props = self.proposals_of(obj, deltas, h, w)
        rois, cls_t, box_t = [], [], []
        scale = torch.tensor(self.DELTA_SCALE, device=x.device)
        for i in range(b):
            gt, gl = boxes[i][real[i]], labels[i][real[i]]
            cand = torch.cat([props[i], gt])  # (n, 4)
            if len(gt):
                ov = box_iou(cand, gt)  # (n, k)
                top, j = ov.max(dim=1)
            else:
                top, j = torch.zeros(len(cand), device=x.device), torch.zeros(len(cand), dtype=torch.long, device=x.device)
            fg, bg = top >= 0.5, top < 0.5
            n_fg = min(int(fg.sum()), self.cfg.rois_per_image // 4)
            n_bg = min(int(bg.sum()), self.cfg.rois_per_image - n_fg)
            pick_fg = fg.nonzero().squeeze(1)[torch.randperm(int(fg.sum()), device=x.device)[:n_fg]]
            pick_bg = bg.nonzero().squeeze(1)[torch.randperm(int(bg.sum()), device=x.device)[:n_bg]]
            pick = torch.cat([pick_fg, pick_bg])
            rois.append(cand[pick])
            cls_t.append(torch.cat([gl[j[pick_fg]] + 1, torch.zeros(n_bg, dtype=torch.long, device=x.device)]))
            tb = encode_boxes(gt[j[pick_fg]], cand[pick_fg]) / scale if n_fg else cand.new_zeros(0, 4)
            box_t.append(torch.cat([tb, cand.new_zeros(n_bg, 4)]))
        scores, refine = self.roi_head(maps[2], rois)
        cls_t, box_t = torch.cat(cls_t), torch.cat(box_t)
        roi_cls = F.cross_entropy(scores, cls_t)
        fg = cls_t > 0
        roi_box = F.smooth_l1_loss(refine[fg], box_t[fg], beta=1.0) if fg.any() else refine.sum() * 0
        total = rpn_cls + rpn_box + roi_cls + roi_box
        return {"loss": total, "rpn_cls": rpn_cls.detach(), "rpn_box": rpn_box.detach(), "roi_cls": roi_cls.detach(),
                "roi_box": roi_box.detach()}

    @torch.no_grad()
    def detect(self, x: Tensor, score_threshold: float = 0.05, iou_threshold: float = 0.5) -> list[ImageDetections]:
        check_iou_threshold(iou_threshold)
        h, w = x.shape[-2:]
        maps, obj, deltas = self.rpn(x)
        props = self.proposals_of(obj, deltas, h, w)
        scores, refine = self.roi_head(maps[2], props)
        probs = scores.softmax(dim=1)[:, 1:]  # (N, C) without the background
        boxes = decode_boxes(refine * torch.tensor(self.DELTA_SCALE, device=x.device), torch.cat(props))  # (N, 4)
        out, start = [], 0
        for p in props:
            n = len(p)
            pr, bx = probs[start:start + n], boxes[start:start + n]  # (n, C), (n, 4)
            start += n
            c = pr.shape[1]
            out.append(finish_detections(bx[:, None].expand(-1, c, -1).reshape(-1, 4), pr.reshape(-1),
                                         torch.arange(c, device=x.device).repeat(n), score_threshold, iou_threshold, h, w))
        return out


# ---------------------------------------------------------------------------- one stage


@register_model("yolo", task="detect", inputs=("image",), example_shape=DET_EXAMPLE,
                description="one stage: an S×S grid, B base boxes per cell, S×S×(5B + C) outputs (YOLO)")
class OneStageDetector(nn.Module):
    """backbone to S×S → 1×1 conv to 5B + C numbers per cell: (dx, dy, dw, dh, conf) per base box, C class scores."""

    @dataclass
    class Config:
        input_shape: tuple[int, ...] = DET_EXAMPLE
        num_classes: int = 10
        grid: int = 8  # S: cells per side
        boxes: int = 2  # B: base boxes per cell
        channels: tuple[int, ...] = (16, 32, 64, 128)  # the backbone's stages (one conv each, pooled between)
        extra: int = 2  # more convs at the grid's size
        base_min: float = 0.22  # the base boxes: squares from base_min to base_max of the image side
        base_max: float = 0.45
        lambda_coord: float = 5.0
        lambda_noobj: float = 0.5
        wh: str = "exp"  # "exp": w = w_base · exp(dw), always > 0; "linear": w = w_base + dw (YOLOv1-like, may go < 0)
        batch_norm: bool = True

        def __post_init__(self) -> None:
            self.input_shape = tuple(self.input_shape)
            self.channels = tuple(int(c) for c in self.channels)
            if not 1 <= self.grid <= 32:
                raise ValueError(f"grid S={self.grid} is out of range: give 1 to 32 cells per side")
            if not 1 <= self.boxes <= 9:
                raise ValueError(f"boxes B={self.boxes} is out of range: give 1 to 9 base boxes per cell")
            if self.wh not in ("exp", "linear"):
                raise ValueError(f"wh={self.wh!r}: use 'exp' or 'linear'")
            if len(self.input_shape) != 3:
                raise ValueError(f"yolo takes images (C, H, W), not {self.input_shape}")
            side = self.input_shape[1]
            if self.input_shape[1] != self.input_shape[2]:
                raise ValueError(f"the grid needs a square image, not {self.input_shape[1]}×{self.input_shape[2]}")
            cell = side // self.grid
            if side % self.grid or cell & (cell - 1):
                fits = [side >> k for k in range(1, len(self.channels)) if side % (1 << k) == 0 and side >> k >= 2]
                hint = f"S = {' or '.join(map(str, fits))} for this image" if fits else "another data.size"
                raise ValueError(f"grid S={self.grid} on a {side}×{side} image: the backbone reaches the grid by "
                                 f"halving the image, so the side must be S times 2, 4, 8 …; use data.size="
                                 f"{self.grid * 8} with S={self.grid}, or {hint}")
            self.halvings = int(math.log2(cell))
            if self.halvings > len(self.channels) - 1:
                raise ValueError(f"grid S={self.grid} needs the image halved {self.halvings} times, but channels "
                                 f"{self.channels} has only {len(self.channels) - 1} halvings: use a larger S or "
                                 "more channels entries")

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        chans = cfg.channels[:cfg.halvings + 1]
        self.backbone = Backbone(cfg.input_shape[0], chans, extra=cfg.extra, batch_norm=cfg.batch_norm)
        self.out = nn.Conv2d(chans[-1], 5 * cfg.boxes + cfg.num_classes, 1)  # (B, 5B + C, S, S)
        with torch.no_grad():  # confidences start near the share of boxes with an object, not at 1/2 (RetinaNet's prior)
            self.out.bias[4:5 * cfg.boxes:5] = -math.log((1 - CONF_PRIOR) / CONF_PRIOR)
        self.register_buffer("base", torch.tensor(geometric_sizes(cfg.boxes, cfg.base_min, cfg.base_max)),
                             persistent=False)  # (B,) sides as a fraction of the image

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) → (B, S, S, 5B + C)."""
        return self.out(self.backbone(x)[-1]).permute(0, 2, 3, 1)

    def split(self, out: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The raw output (B, S, S, 5B + C) as centres (B, S, S, nB, 2) in cells, sizes
        (B, S, S, nB, 2) as image fractions, confidence logits (B, S, S, nB), class logits (B, S, S, C)."""
        nb = self.cfg.boxes
        boxes = out[..., :5 * nb].reshape(*out.shape[:3], nb, 5)  # (B, S, S, nB, 5)
        xy = boxes[..., :2].sigmoid()  # (…, 2) offsets in the cell, in [0, 1]
        d = boxes[..., 2:4]  # (…, 2)
        base = self.base.view(1, 1, 1, nb, 1)
        wh = base * torch.exp(d.clamp(-4, 4)) if self.cfg.wh == "exp" else base + d  # (…, 2) image fractions
        return xy, wh, boxes[..., 4], out[..., 5 * nb:]

    def responsibilities(self, boxes: Tensor, labels: Tensor, height: int) -> dict[str, Tensor]:
        """Targets on the grid: which (cell, base box) is responsible for each object, and what
        it should predict. obj (B, S, S, nB) bool, xy, wh (B, S, S, nB, 2), cls (B, S, S) (−1: none)."""
        s, nb = self.cfg.grid, self.cfg.boxes
        b = len(boxes)
        dev = boxes.device
        real = labels >= 0  # (B, K)
        cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2 / height, (boxes[..., 1] + boxes[..., 3]) / 2 / height  # (B, K)
        w, h = (boxes[..., 2] - boxes[..., 0]) / height, (boxes[..., 3] - boxes[..., 1]) / height  # (B, K)
        col, row = (cx * s).floor().clamp(0, s - 1).long(), (cy * s).floor().clamp(0, s - 1).long()  # (B, K)
        # the base box most like the object in shape: IoU of the two, both centred at the origin
        inter = torch.minimum(w[..., None], self.base) * torch.minimum(h[..., None], self.base)  # (B, K, nB)
        shape_iou = inter / (w[..., None] * h[..., None] + self.base ** 2 - inter).clamp_min(1e-9)
        which = shape_iou.argmax(dim=2)  # (B, K)
        obj = torch.zeros(b, s, s, nb, dtype=torch.bool, device=dev)
        xy = torch.zeros(b, s, s, nb, 2, device=dev)
        wh = torch.ones(b, s, s, nb, 2, device=dev)
        cls = torch.full((b, s, s), -1, dtype=torch.long, device=dev)
        img = torch.arange(b, device=dev)[:, None].expand_as(row)  # (B, K)
        sel = real.nonzero(as_tuple=True)
        i, r, c, j = img[sel], row[sel], col[sel], which[sel]
        obj[i, r, c, j] = True  # two objects in one cell and base box: the later one stays (rare)
        xy[i, r, c, j] = torch.stack([cx[sel] * s - c, cy[sel] * s - r], dim=-1)
        wh[i, r, c, j] = torch.stack([w[sel], h[sel]], dim=-1)
        cls[i, r, c] = labels[sel]
        return {"obj": obj, "xy": xy, "wh": wh, "cls": cls}

    def loss(self, x: Tensor, boxes: Tensor, labels: Tensor) -> dict[str, Tensor]:
        boxes, labels = pad_truth(boxes, labels)
        out = self.forward(x)  # (B, S, S, 5B + C)
        xy, wh, conf, cls = self.split(out)
        t = self.responsibilities(boxes, labels, x.shape[-1])
        obj = t["obj"]  # (B, S, S, nB)
        n = len(x)
        lc, ln = self.cfg.lambda_coord, self.cfg.lambda_noobj
        coord = ((xy - t["xy"]) ** 2).sum(-1) + ((safe_sqrt(wh) - t["wh"].sqrt()) ** 2).sum(-1)  # (B, S, S, nB)
        coord = lc * coord[obj].sum() / n
        c = conf.sigmoid()  # (B, S, S, nB) Ĉ
        conf_obj = ((1 - c[obj]) ** 2).sum() / n
        conf_noobj = ln * (c[~obj] ** 2).sum() / n
        has = t["cls"] >= 0  # (B, S, S)
        classes = F.cross_entropy(cls[has], t["cls"][has], reduction="sum") / n if has.any() else cls.sum() * 0
        total = coord + conf_obj + conf_noobj + classes
        return {"loss": total, "coord": coord.detach(), "conf_obj": conf_obj.detach(),
                "conf_noobj": conf_noobj.detach(), "class": classes.detach()}

    def decode(self, out: Tensor, height: int) -> tuple[Tensor, Tensor, Tensor]:
        """Every predicted box of every cell: boxes (B, S·S·nB, 4) xyxy in pixels,
        confidences (B, S·S·nB) and class probabilities (B, S·S·nB, C)."""
        s = self.cfg.grid
        xy, wh, conf, cls = self.split(out)
        cols = torch.arange(s, device=out.device).view(1, 1, s, 1)
        rows = torch.arange(s, device=out.device).view(1, s, 1, 1)
        cx = (cols + xy[..., 0]) / s * height  # (B, S, S, nB) pixels
        cy = (rows + xy[..., 1]) / s * height
        size = wh.clamp_min(0) * height  # (B, S, S, nB, 2)
        boxes = box_corners(torch.stack([cx, cy, size[..., 0], size[..., 1]], dim=-1))  # (B, S, S, nB, 4)
        probs = cls.softmax(dim=-1)[:, :, :, None, :].expand(*conf.shape, -1)  # (B, S, S, nB, C)
        b = len(out)
        return boxes.reshape(b, -1, 4), conf.sigmoid().reshape(b, -1), probs.reshape(b, -1, probs.shape[-1])

    @torch.no_grad()
    def detect(self, x: Tensor, score_threshold: float = 0.05, iou_threshold: float = 0.5) -> list[ImageDetections]:
        """score = confidence · p(class): each box with its best class, then threshold and NMS."""
        check_iou_threshold(iou_threshold)
        h, w = x.shape[-2:]
        boxes, conf, probs = self.decode(self.forward(x), h)
        p, label = probs.max(dim=2)  # (B, N)
        score = conf * p
        return [finish_detections(boxes[i], score[i], label[i], score_threshold, iou_threshold, h, w)
                for i in range(len(x))]


def safe_sqrt(v: Tensor, eps: float = 1e-6) -> Tensor:
    """sign(v)·√(|v| + ε): √ for positive v, finite with a gradient pointing back up for
    negative v (√ of a negative width is NaN, and one NaN ends a run)."""
    return torch.sign(v) * torch.sqrt(v.abs() + eps)
