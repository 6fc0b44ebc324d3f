"""What the segmentation and detection tasks share: checking that a dataset's masks and
boxes fit its images, standardising images, shuffled batches that a resumed run repeats,
timing inference, and the picture of the data itself (scenes with masks and boxes)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from dlcourse_tui.data.base import Dataset, Split
from dlcourse_tui.errors import UserError

PICTURE_SCALE = 3  # pixels of a picture per image pixel


def check_image_data(data: Dataset, lesson: str) -> None:
    """UserError unless data is images."""
    if data.kind != "image" or len(data.input_shape) != 3:
        raise UserError(f"the {lesson} lesson works on images, but {data.name} is {data.kind} data; "
                        "use data.name=scenes.")


def check_masks(data: Dataset, lesson: str = "segmentation") -> None:
    """UserError unless every split carries masks (N, H, W) that fit its images (N, C, H, W)
    and hold only labels 0..len(classes)."""
    check_image_data(data, lesson)
    for name, split in (("training", data.train), ("validation", data.val)):
        masks = split.extras.get("masks")
        if masks is None:
            raise UserError(f"{data.name} has no segmentation masks ({name} split); the {lesson} lesson needs data "
                            "that carries them: data.name=scenes (or shapes).")
        n, _, h, w = split.x.shape
        if not isinstance(masks, Tensor) or tuple(masks.shape) != (n, h, w):
            shape = tuple(masks.shape) if isinstance(masks, Tensor) else type(masks).__name__
            raise UserError(f"{data.name}: the {name} masks have shape {shape}, which does not fit its images "
                            f"{tuple(split.x.shape)}: a mask needs one label per pixel, (N, H, W) = {(n, h, w)}.")
        if masks.numel() and int(masks.max()) > len(data.classes):
            raise UserError(f"{data.name}: a {name} mask holds label {int(masks.max())}, but there are only "
                            f"{len(data.classes)} classes and the background (labels 0..{len(data.classes)}).")


def check_boxes_fit(data: Dataset, lesson: str = "detection") -> None:
    """UserError unless every split carries boxes (N, K, 4) inside its images and labels (N, K)."""
    check_image_data(data, lesson)
    for name, split in (("training", data.train), ("validation", data.val)):
        boxes, labels = split.extras.get("boxes"), split.extras.get("box_labels")
        if boxes is None or labels is None:
            raise UserError(f"{data.name} has no boxes ({name} split); the {lesson} lesson needs data that carries "
                            "them: data.name=scenes (or shapes).")
        n, _, h, w = split.x.shape
        if not isinstance(boxes, Tensor) or boxes.ndim != 3 or boxes.shape[0] != n or boxes.shape[2] != 4:
            shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
            raise UserError(f"{data.name}: the {name} boxes have shape {shape}; they must be (N, K, 4) as "
                            f"(x0, y0, x1, y1) for the {n} images.")
        if not isinstance(labels, Tensor) or tuple(labels.shape) != tuple(boxes.shape[:2]):
            shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise UserError(f"{data.name}: the {name} box labels have shape {shape}, not (N, K) = {tuple(boxes.shape[:2])}.")
        real = boxes[labels >= 0]  # (M, 4)
        if real.numel():
            x0, y0, x1, y1 = real.unbind(1)
            outside = (x0 < 0) | (y0 < 0) | (x1 > w) | (y1 > h) | (x1 <= x0) | (y1 <= y0)
            if outside.any():
                bad = [round(v, 1) for v in real[outside.nonzero()[0, 0]].tolist()]
                raise UserError(f"{data.name}: a {name} box {bad} does not fit its {w}×{h} image: boxes need "
                                f"0 ≤ x0 < x1 ≤ {w} and 0 ≤ y0 < y1 ≤ {h}.")
        if labels.numel() and int(labels.max()) >= len(data.classes):
            raise UserError(f"{data.name}: a {name} box has class {int(labels.max())}, but there are only "
                            f"{len(data.classes)} classes.")


def batched_updates(optimizer: torch.optim.Optimizer) -> None:
    """Let the optimiser update all parameters in a few batched ("foreach") operations
    instead of a handful per tensor; PyTorch does so by default only on a GPU, and on a
    CPU the per-tensor loop costs a small segmentation net a tenth of its step."""
    for group in optimizer.param_groups:
        if "foreach" in group:
            group["foreach"] = True


class Standardise:
    """uint8 images (B, C, H, W) -> floats, minus the training mean, over the std, per channel."""

    def __init__(self, data: Dataset, device: torch.device) -> None:
        self.mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)  # (1, C, 1, 1)
        self.std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)

    def __call__(self, x: Tensor) -> Tensor:
        return (x.float().div_(255) - self.mean) / self.std  # (B, C, H, W)


def epoch_order(n: int, seed: int, epoch: int, device: torch.device) -> Tensor:
    """The permutation of epoch `epoch`: a function of (seed, epoch) only, so a resumed run repeats it."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)  # (n,)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, device: torch.device, start: int,
                  steps: int) -> Iterator[tuple[int, Tensor]]:
    """(i, the indices of batch i) for batches start … steps − 1 of epoch `epoch`: consecutive
    slices of epoch_order, so a resumed run sees the batches an uninterrupted one sees."""
    order = epoch_order(n, seed, epoch, device)  # (n,)
    for i in range(start, steps):
        yield i, order[i * batch_size:(i + 1) * batch_size]  # (B,)


def batch_generator(seed: int, epoch: int, batch: int) -> torch.Generator:
    """A generator for what one batch draws (patches, windows): a function of (seed, epoch, batch)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 100_003 + batch + 7)


def timed_images_per_second(forward: Callable[[Tensor], object], x: Tensor, min_seconds: float = 0.15,
                            max_repeats: int = 20) -> float:
    """Images per second of forward on the batch x (after one warm-up call), timed over
    repeats until min_seconds have passed."""
    forward(x[:1])  # warm-up: the first call pays for allocation and kernel choice
    done, t0 = 0, time.perf_counter()
    while True:
        forward(x)
        done += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds or done >= max_repeats:
            return done * len(x) / max(elapsed, 1e-9)


def scenes_picture_of(split: Split, names: tuple[str, ...], count: int = 4) -> np.ndarray:
    """The first `count` images of split with their semantic mask, instances and boxes
    (render.overlay.scenes_picture); splits without an instance map show the mask there."""
    from dlcourse_tui.render.overlay import scenes_picture

    k = min(count, len(split))
    images = split.x[:k].permute(0, 2, 3, 1).cpu().numpy()  # (k, H, W, 3)
    masks = split.extras["masks"][:k].cpu().numpy()
    instances = split.extras.get("instances", split.extras["masks"])[:k].cpu().numpy()
    boxes = split.extras["boxes"][:k].cpu().numpy()
    labels = split.extras["box_labels"][:k].cpu().numpy()
    captions = list(split.extras.get("captions", [])[:k])
    return scenes_picture(images, masks, instances, boxes, labels, names, scale=PICTURE_SCALE, captions=captions)
