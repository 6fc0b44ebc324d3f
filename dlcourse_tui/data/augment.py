"""Data augmentation as batched tensor operations on the training device.

Each function takes a whole batch x of images, (B, C, H, W), either uint8 in
[0, 255] or floating point in [0, 1], and returns a batch of the same shape, dtype
and value range; labels are untouched (every transform here keeps the class of a
picture: a mirrored star is still a star). Randomness comes only from the
`torch.Generator` passed in, so a seeded generator gives the same batch every time,
and saving the generator's state (`Augmenter.state_dict`) makes a resumed run see
the same augmented images as an uninterrupted one. There is no per-image Python loop
and no PIL: per image we only draw a few random numbers, then one tensor operation
does the whole batch, on the GPU as well as on the CPU.

- hflip: mirror left-right with probability p.
- crop: pad P pixels of zeros on every side, then cut a random H×W window
  (a random shift by up to P pixels; torchvision's RandomCrop(size, padding=P)).
- color: a colour cast, x' = gain_c · x + offset_c per image and channel, gains in
  [1 − s, 1 + s] and offsets in [−s/2, s/2] (s the strength), then clipped.
- affine: a small geometric distortion, rotation up to ±30°·s, scale 1 ± 0.15·s and
  shear up to ±0.15·s, sampled bilinearly through affine_grid / grid_sample with
  zeros outside (torchvision's RandomAffine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dlcourse_tui.errors import UserError

OPS = ("flip", "crop", "color", "affine")
DEFAULT_STRENGTH = {"flip": 0.5, "crop": 4.0, "color": 0.2, "affine": 0.5}  # probability, pixels, strength, strength
STRENGTH_MEANING = {"flip": "probability of a mirror", "crop": "padding in pixels", "color": "cast strength",
                    "affine": "distortion strength"}


def _rand(n: int, g: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(n, generator=g, device=device)  # (n,) in [0, 1)


def _to_unit(x: Tensor) -> Tensor:
    """Floats in [0, 1] for any input (uint8 divided by 255)."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def _from_unit(y: Tensor, like: Tensor) -> Tensor:
    """Back to the dtype and range of `like`: clipped to [0, 1], uint8 rounded."""
    y = y.clamp_(0, 1)
    if like.dtype == torch.uint8:
        return y.mul_(255).round_().to(torch.uint8)
    return y.to(like.dtype)


def hflip(x: Tensor, p: float, g: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability p: (B, C, H, W) -> same."""
    chosen = _rand(x.shape[0], g, x.device) < p  # (B,)
    return torch.where(chosen.view(-1, 1, 1, 1), x.flip(-1), x)


def random_crop(x: Tensor, padding: int, g: torch.Generator) -> Tensor:
    """Zero-pad by `padding` pixels, then cut each image's H×W window at a random
    offset in [0, 2·padding]²: a shift by up to `padding` pixels either way."""
    if padding <= 0:
        return x
    B, C, H, W = x.shape
    P = int(padding)
    padded = F.pad(x, (P, P, P, P))  # (B, C, H + 2P, W + 2P), zeros around
    oy = (_rand(B, g, x.device) * (2 * P + 1)).long().clamp_(max=2 * P)  # (B,) top row of each window
    ox = (_rand(B, g, x.device) * (2 * P + 1)).long().clamp_(max=2 * P)  # (B,) left column
    rows = oy[:, None] + torch.arange(H, device=x.device)  # (B, H)
    cols = ox[:, None] + torch.arange(W, device=x.device)  # (B, W)
    Wp = W + 2 * P
    flat = (rows[:, :, None] * Wp + cols[:, None, :]).view(B, 1, H * W).expand(B, C, H * W)  # (B, C, H·W)
    return padded.flatten(2).gather(2, flat).view(B, C, H, W)


def color_cast(x: Tensor, strength: float, g: torch.Generator, p: float = 1.0) -> Tensor:
    """x' = gain · x + offset per image and channel (gain ∈ [1 − s, 1 + s], offset ∈
    [−s/2, s/2]), with probability p per image; clipped to the input's range."""
    if strength <= 0:
        return x
    B, C = x.shape[:2]
    u = torch.rand(B, C, 2, generator=g, device=x.device) * 2 - 1  # (B, C, 2) in [-1, 1)
    chosen = (_rand(B, g, x.device) < p).float().view(B, 1)  # (B, 1)
    gain = 1 + strength * u[..., 0] * chosen  # (B, C)
    offset = 0.5 * strength * u[..., 1] * chosen  # (B, C)
    y = _to_unit(x) * gain[:, :, None, None] + offset[:, :, None, None]  # (B, C, H, W)
    return _from_unit(y, x)


def affine_matrices(n: int, strength: float, g: torch.Generator, device: torch.device) -> Tensor:
    """n random 2×3 matrices close to the identity (rotation, scale, shear): (n, 2, 3)."""
    u = torch.rand(n, 3, generator=g, device=device) * 2 - 1  # (n, 3) in [-1, 1)
    angle = u[:, 0] * strength * math.radians(30)
    scale = 1 + u[:, 1] * strength * 0.15
    shear = u[:, 2] * strength * 0.15
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale  # the grid maps output to input: inverse scale
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin + shear * cos
    theta[:, 1, 0] = sin
    theta[:, 1, 1] = cos + shear * sin
    return theta


def random_affine(x: Tensor, strength: float, g: torch.Generator, p: float = 1.0) -> Tensor:
    """Rotate, scale and shear each image a little (with probability p), bilinearly,
    zeros where the warped image leaves the frame: (B, C, H, W) -> same."""
    if strength <= 0:
        return x
    B = x.shape[0]
    theta = affine_matrices(B, strength, g, x.device)  # (B, 2, 3)
    chosen = _rand(B, g, x.device) < p  # (B,)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2) where each output pixel reads
    y = F.grid_sample(_to_unit(x), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.where(chosen.view(-1, 1, 1, 1), _from_unit(y, x), x)


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run and how strongly; 0 switches one off."""

    flip: float = 0.0  # probability of a horizontal mirror
    crop: float = 0.0  # padding P of the random crop, in pixels
    color: float = 0.0  # colour-cast strength s
    affine: float = 0.0  # geometric distortion strength s (1: ±30°, scale ±15 %, shear ±0.15)
    p: float = 1.0  # probability that colour and affine apply to an image

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(op for op in OPS if getattr(self, op) > 0)

    def describe(self) -> str:
        """'flip 0.5 · crop 4 px · ...' or 'none'."""
        units = {"crop": " px"}
        return " · ".join(f"{op} {getattr(self, op):g}{units.get(op, '')}" for op in self.active) or "none"


def parse_augment(spec: Any, extra: dict[str, Any] | None = None) -> AugmentConfig:
    """An AugmentConfig from a task setting: "flip,crop,color,affine" (default strengths),
    "flip=0.5,crop=4", "all", "none" / "" / False; True means all four.
    `extra` may hold task_args such as augment_p."""
    if spec is True:
        spec = "all"
    if spec in (None, False, "", "none", "off", "false"):
        spec = ""
    if not isinstance(spec, str):
        raise UserError(f"task.augment={spec!r}: give a list such as \"flip,crop,color,affine\" or \"none\".")
    values: dict[str, float] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip()
        if name == "all":
            values.update(DEFAULT_STRENGTH)
            continue
        if name not in OPS:
            from dlcourse_tui.errors import suggest

            raise UserError(f"task.augment: no augmentation {name!r}.{suggest(name, OPS)} Choose from {', '.join(OPS)} "
                            "(e.g. --set augment=flip,crop=4,color=0.2,affine=0.5).")
        try:
            values[name] = float(value) if value.strip() else DEFAULT_STRENGTH[name]
        except ValueError:
            raise UserError(f"task.augment: {item!r}: the {STRENGTH_MEANING[name]} must be a number.") from None
        if values[name] < 0 or (name == "flip" and values[name] > 1):
            raise UserError(f"task.augment: {item!r}: the {STRENGTH_MEANING[name]} is out of range.")
    p = float((extra or {}).get("augment_p", 1.0))
    if not 0 <= p <= 1:
        raise UserError(f"task.augment_p={p:g}: a probability lies in [0, 1].")
    return AugmentConfig(**values, p=p)


class Augmenter:
    """The configured augmentations with their own generator (on the data's device);
    call it on a batch. Its state_dict is the generator state, for exact resume."""

    def __init__(self, cfg: AugmentConfig, seed: int, device: torch.device | str = "cpu") -> None:
        self.cfg = cfg
        self.generator = torch.Generator(device=torch.device(device)).manual_seed(seed)

    def __bool__(self) -> bool:
        return bool(self.cfg.active)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a batch (B, C, H, W), uint8 or float in [0, 1]: same shape, dtype, range."""
        g, c = generator or self.generator, self.cfg
        if c.flip > 0:
            x = hflip(x, c.flip, g)
        if c.crop > 0:
            x = random_crop(x, int(round(c.crop)), g)
        if c.affine > 0:
            x = random_affine(x, c.affine, g, c.p)
        if c.color > 0:
            x = color_cast(x, c.color, g, c.p)
        return x

    def state_dict(self) -> dict[str, Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])
