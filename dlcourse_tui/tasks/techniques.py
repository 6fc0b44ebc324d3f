"""Training techniques for a classifier (the chapter-2 lesson of that name): the train-time
augmenter a ClassifyTask uses when `task.augment` is set, and two pictures:

- augmented: one image, then rows of its augmented versions, one row per augmentation
  alone and a last row with all of them together;
- activation_stats (with `task.activation_stats = true`): the per-channel mean ± std
  of every convolution's output, and of every batch norm's output after it, on one
  validation batch, all on one vertical scale, so a network with batch norm can be
  compared with one without.

Nothing here touches the training generator's stream: pictures draw from their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from dlcourse_tui.data.augment import AugmentConfig, Augmenter, parse_augment
from dlcourse_tui.engine.events import PictureReady
from dlcourse_tui.errors import UserError
from dlcourse_tui.render.images import chw_to_hwc, tile, to_rgb, upscale

if TYPE_CHECKING:
    from dlcourse_tui.engine.config import RunConfig
    from dlcourse_tui.engine.launch import DistContext
    from dlcourse_tui.tasks.classify import ClassifyTask

AUGMENT_SEED_OFFSET = 7919  # keeps the augmenter's stream apart from the data's and the shuffle's
SAMPLES_PER_ROW = 7
STATS_BATCH = 256
MAX_CHANNELS = 64


def make_augmenter(cfg: "RunConfig", kind: str, device: torch.device,
                   dist: "DistContext | None" = None) -> Augmenter | None:
    """The augmenter `task.augment` asks for (seeded from the run's seed and the rank), or None."""
    aug = parse_augment(cfg.task_args.get("augment", ""), cfg.task_args)
    if not aug.active:
        return None
    if kind != "image":
        raise UserError(f"task.augment={cfg.task_args['augment']!r}: augmentation is for images, but {cfg.data} is "
                        "points data; drop --set augment or pick image data (shapes, digits, ...).")
    rank = dist.rank if dist is not None else 0
    return Augmenter(aug, seed=cfg.train.seed * 1_000_003 + AUGMENT_SEED_OFFSET + rank, device=device)


def technique_pictures(task: "ClassifyTask", epoch: int) -> list[PictureReady]:
    """The augmented grid (first evaluation only: it never changes) and activation statistics."""
    out = []
    if task.augmenter is not None and epoch <= task.config.train.eval_every:
        names = ", ".join(task.augmenter.cfg.active)
        out.append(PictureReady("augmented", f"one training image (left), then rows of it augmented by {names} "
                                "one at a time, and all together in the last row", epoch,
                                augmented_grid(task.data.train.x[0], task.augmenter.cfg)))
    if task.config.task_args.get("activation_stats") and task.data.kind == "image":
        pixels = activation_stats_picture(task.model, task.prepare(task.data.val.x[:STATS_BATCH]))
        if pixels is not None:
            out.append(PictureReady("activation_stats", "per-channel mean ± std of each conv's output (orange) and of "
                                    "each batch norm's output (blue), one row per layer, first "
                                    f"{MAX_CHANNELS} channels, one validation batch, one scale for all rows",
                                    epoch, pixels))
    return out


@torch.inference_mode()
def augmented_grid(image: Tensor, cfg: AugmentConfig, *, seed: int = 0, scale: int = 3) -> np.ndarray:
    """Rows: each active augmentation alone, then all together; the original first in each
    row. `image` is (C, H, W) uint8. Returns (H', W', 3) uint8 pixels."""
    g = torch.Generator(device=image.device).manual_seed(seed)
    batch = image.unsqueeze(0).expand(SAMPLES_PER_ROW, *image.shape).contiguous()  # (S, C, H, W)
    rows = []
    configs = [AugmentConfig(**{op: getattr(cfg, op)}, p=1.0) for op in cfg.active]
    if len(configs) > 1:
        configs.append(cfg)
    for c in configs:
        if c.flip > 0:  # a flip row shows both outcomes, whatever its probability
            c = AugmentConfig(flip=0.5)
        out = Augmenter(c, 0, image.device)(batch, generator=g)  # (S, C, H, W)
        rows.append(torch.cat([image.unsqueeze(0), out]))  # (S + 1, C, H, W)
    cells = torch.cat(rows).cpu().numpy()  # (rows·(S + 1), C, H, W)
    images = np.stack([to_rgb(chw_to_hwc(c)) for c in cells])
    return upscale(tile(images, ncols=SAMPLES_PER_ROW + 1, pad=1), scale)


@torch.inference_mode()
def layer_statistics(model: nn.Module, x: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """(name, "conv" | "bn", per-channel mean (C,), per-channel std (C,)) of the output of
    every Conv2d and BatchNorm2d in `model` on batch x, in the order they run (eval mode)."""
    stats: list[tuple[str, str, Tensor, Tensor]] = []
    hooks = []

    def hook(name: str, kind: str):
        def record(module, inputs, output):
            stats.append((name, kind, output.mean(dim=(0, 2, 3)), output.std(dim=(0, 2, 3))))  # (C,), (C,)
        return record

    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(hook(name, "conv")))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) or type(m).__name__ == "ManualBatchNorm2d":
            hooks.append(m.register_forward_hook(hook(name, "bn")))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return stats


CONV_COLOUR = np.array([230, 140, 40], dtype=np.uint8)
BN_COLOUR = np.array([70, 150, 235], dtype=np.uint8)


def activation_stats_picture(model: nn.Module, x: Tensor, *, height: int = 40, bar: int = 3) -> np.ndarray | None:
    """One row per conv / batch-norm output: for each channel a bar from mean − std to
    mean + std and a white tick at the mean, a grey line at 0, the same scale in every
    row. None when the model has no convolutions."""
    stats = layer_statistics(model, x)
    if not stats:
        return None
    lo = min(float((m - s)[:MAX_CHANNELS].min()) for _, _, m, s in stats)
    hi = max(float((m + s)[:MAX_CHANNELS].max()) for _, _, m, s in stats)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = max(hi - lo, 1e-6)
    width = max(min(len(m), MAX_CHANNELS) for _, _, m, _ in stats) * (bar + 1)
    rows = []

    def y_of(v: np.ndarray) -> np.ndarray:  # value -> pixel row, top = hi
        return np.clip(((hi - v) / span * (height - 1)).round().astype(int), 0, height - 1)

    for _, kind, mean, std in stats:
        m, s = mean[:MAX_CHANNELS].float().cpu().numpy(), std[:MAX_CHANNELS].float().cpu().numpy()
        row = np.full((height, width, 3), 24, dtype=np.uint8)
        row[y_of(np.array([0.0]))[0], :] = 90  # the zero line
        top, bottom, mid = y_of(m + s), y_of(m - s), y_of(m)
        colour = BN_COLOUR if kind == "bn" else CONV_COLOUR
        for c in range(len(m)):
            x0 = c * (bar + 1)
            row[top[c]:bottom[c] + 1, x0:x0 + bar] = colour
            row[mid[c], x0:x0 + bar] = 255
        rows.append(row)
    gap = np.full((3, width, 3), 60, dtype=np.uint8)
    out = []
    for r in rows:
        out += [r, gap]
    return upscale(np.concatenate(out[:-1]), 2)
