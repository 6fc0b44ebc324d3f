"""Coloured shapes on cluttered backgrounds: 32×32 RGB, 10 classes, with masks, boxes and captions.

One generator serves classification, segmentation, detection, captioning and contrastive
lessons. Every image has a random background (a colour with a gentle gradient), thin
clutter lines and dots behind the objects, one main object whose class is the label
(plus, with `max_objects` > 1, smaller objects of random classes), and pixel noise.

Each object is drawn from a signed distance function (negative inside) evaluated on the
pixel grid for the whole batch at once: the pixel grid is mapped into the object's own
frame (translate, rotate, stretch, scale), the class's distance function gives the
distance to the outline in pixels d, and the coverage is clamp(0.5 - d, 0, 1), which
anti-aliases the edge. Circles, rings and ellipses are distances to curves; squares,
triangles, stars, crosses and arrows are maxima and minima of half-plane distances;
the heart is Inigo Quilez's exact heart distance; the crescent is a disc minus a disc.

Position, size (30-70% of the image), rotation, aspect and colour are random and
independent of the class (colour is always chosen to contrast with the background),
so no single pixel or colour gives the class away: a linear model on raw pixels does
poorly while a small CNN does very well.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from dlcourse_tui.data.base import Dataset, Split, channel_stats
from dlcourse_tui.data.digits import pixel_grid, segment_distance_sq

SHAPE_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "ring",
    "cross",
    "star",
    "heart",
    "arrow",
    "crescent",
    "ellipse",
)

#: Named colours objects are drawn in (jittered a little); captions name the nearest.
PALETTE: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("red", (0.86, 0.1, 0.1)),
    ("orange", (1.0, 0.55, 0.05)),
    ("yellow", (0.96, 0.9, 0.1)),
    ("green", (0.12, 0.68, 0.18)),
    ("cyan", (0.1, 0.82, 0.88)),
    ("blue", (0.1, 0.25, 0.92)),
    ("purple", (0.55, 0.15, 0.75)),
    ("pink", (1.0, 0.52, 0.76)),
    ("brown", (0.5, 0.3, 0.1)),
    ("white", (0.96, 0.96, 0.96)),
    ("gray", (0.5, 0.5, 0.5)),
    ("black", (0.04, 0.04, 0.04)),
)
_PALETTE_RGB = torch.tensor([rgb for _, rgb in PALETTE])  # (P, 3)
_LUMA = torch.tensor([0.2126, 0.7152, 0.0722])  # (3,)

_SQRT2 = math.sqrt(2.0)

#: Fraction of images with objects lighter than the background (the rest: darker).
LIGHT_ON_DARK = 0.85

_CHUNK = 256  # images rendered at once (divided by max_objects): small temporaries stay in cache


def _star_edge(points: int = 5, outer: float = 1.0, inner: float = 0.45) -> tuple[float, float, float, float]:
    """Tip (tx, 0) and unit outward normal (nx, ny) of the edge of one folded star sector."""
    half = math.pi / points
    tx = outer
    vx, vy = inner * math.cos(half), inner * math.sin(half)
    dx, dy = vx - tx, vy
    norm = math.hypot(dx, dy)
    nx, ny = dy / norm, -dx / norm
    if nx * tx < 0:  # the origin must be on the inner side
        nx, ny = -nx, -ny
    return tx, 0.0, nx, ny


_STAR = _star_edge()


# ---------------------------------------------------------------------------- distances
# Each takes local coordinates u, v (M, H, W) where the object fits the unit disc, and a
# per-object shape parameter p (M, 1, 1) that only the ellipse uses, and returns the signed
# distance to its outline in the same units (negative inside, exact or a close bound).


def _sd_circle(u: Tensor, v: Tensor, p: Tensor) -> Tensor:
    """A disc of radius 0.92."""
    return torch.sqrt(u * u + v * v) - 0.92


def _sd_square(u: Tensor, v: Tensor, p: Tensor) -> Tensor:
    """A square of half-side 0.68 (Chebyshev distance; a rectangle once the frame is stretched)."""
    return torch.maximum(u.abs(), v.abs()) - 0.68


def _sd_triangle(u: Tensor, v: Tensor, p: Tensor) -> Tensor:
    """An equilateral triangle of circumradius 1 (inradius 0.5): the largest of three half-plane distances."""
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    d = torch.maximum(-v, c * u + s * v)  # (M, H, W)
    return torch.maximum(d, -c * u + s * v) - 0.5


def _sd_ring(u: Tensor, v: Tensor, p: Tensor) -> Tensor:
    """An annulus between radii 0.46 and 0.94."""
    return (torch.sqrt(u * u + v * v) - 0.7).abs() - 0.24


def _sd_cross(u: Tensor, v: Tensor, p: Tensor) -> Tensor:
    """A plus sign: the union (minimum) of two bars."""
    au, av = u.abs(), v.abs()
    horizontal = torch.maximum(au - 0.92, av - 0.3)  # (M, H, W)
    vertical = torch.maximum(au - 0.3, av - 0.92)  # (M, H, W)
    return torch.minimum(horizontal, vertical)


def _sd_star(u: Tensor, v: Tensor, p: Tensor) -> Tensor:
    """A five-pointed star: fold the plane into one half-sector, where a single edge remains."""
    sector = 2 * math.pi / 5
    r = torch.sqrt(u * u + v * v)  # (M, H, W)
    phi = torch.remainder(torch.atan2(v, u), sector)  # (M, H, W) in [0, sector)
    phi = torch.minimum(phi, sector - phi)  # (M, H, W) in [0, sector / 2]
    tx, ty, nx, ny = _STAR
    return nx * (r * torch.cos(phi) - tx) + ny * (r * torch.sin(phi) - ty)


def _sd_heart(u: Tensor, v: Tensor, p: Tensor) -> Tensor:
    """Inigo Quilez's exact heart distance (tip at the origin, lobes up to y ~ 1.1, y up), recentred."""
    k = 0.62  # local unit disc -> heart units
    x = (u * k).abs()  # (M, H, W)
    y = 0.55 - v * k  # (M, H, W) image y points down
    lobe = torch.sqrt((x - 0.25) ** 2 + (y - 0.75) ** 2) - _SQRT2 / 4  # (M, H, W)
    m = 0.5 * (x + y).clamp_min(0.0)  # (M, H, W)
    tip = torch.minimum(x * x + (y - 1.0) ** 2, (x - m) ** 2 + (y - m) ** 2)  # (M, H, W)
    body = torch.sqrt(tip) * torch.sign(x - y)  # (M, H, W)
    return torch.where(x + y > 1.0, lobe, body) / k


def _sd_arrow(u: Tensor, v: Tensor, p: Tensor) -> Tensor:
    """An arrow pointing along +u: a shaft (box) united with a triangular head (half-planes)."""
    av = v.abs()
    shaft = torch.maximum(av - 0.25, torch.maximum(u - 0.1, -0.92 - u))  # (M, H, W)
    edge = (0.62 * (u - 0.95) + 0.9 * av) / math.hypot(0.62, 0.9)  # (M, H, W) tip (0.95, 0), barbs (0.05, ±0.62)
    head = torch.maximum(0.05 - u, edge)  # (M, H, W)
    return torch.minimum(shaft, head)


def _sd_crescent(u: Tensor, v: Tensor, p: Tensor) -> Tensor:
    """A disc with an offset disc bitten out of it (intersection with the complement)."""
    outer = torch.sqrt(u * u + v * v) - 0.92  # (M, H, W)
    bite = 0.74 - torch.sqrt((u - 0.42) ** 2 + v * v)  # (M, H, W)
    return torch.maximum(outer, bite)


def _sd_ellipse(u: Tensor, v: Tensor, p: Tensor) -> Tensor:
    """An ellipse with semi-axes 0.95 and p (M, 1, 1): implicit value over its gradient norm."""
    a = 0.95
    qu, qv = u / a, v / p  # (M, H, W)
    r = torch.sqrt(qu * qu + qv * qv).clamp_min(1e-6)  # (M, H, W)
    grad = torch.sqrt((qu / a) ** 2 + (qv / p) ** 2).clamp_min(1e-6) / r  # (M, H, W)
    return (r - 1.0) / grad


_SDF = (
    _sd_circle,
    _sd_square,
    _sd_triangle,
    _sd_ring,
    _sd_cross,
    _sd_star,
    _sd_heart,
    _sd_arrow,
    _sd_crescent,
    _sd_ellipse,
)
if len(_SDF) != len(SHAPE_CLASSES):
    raise RuntimeError("one distance function per shape class")
_HEART = SHAPE_CLASSES.index("heart")
_CIRCLE = SHAPE_CLASSES.index("circle")
_RING = SHAPE_CLASSES.index("ring")
_ELLIPSE = SHAPE_CLASSES.index("ellipse")


# ---------------------------------------------------------------------------- captions

_SIZE_WORDS = ("small", "medium", "large")
_POSITION_WORDS = (
    ("at the top left", "at the top", "at the top right"),
    ("on the left", "in the middle", "on the right"),
    ("at the bottom left", "at the bottom", "at the bottom right"),
)


def _caption(parts: list[tuple[int, int, int, int, int]]) -> str:
    """'a large red triangle at the top left and a small blue ring …' from (size, colour, class, row, col)."""
    phrases = [
        f"a {_SIZE_WORDS[s]} {PALETTE[c][0]} {SHAPE_CLASSES[k]} {_POSITION_WORDS[r][q]}" for s, c, k, r, q in parts
    ]
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


# ---------------------------------------------------------------------------- generator


def _uniform(shape: tuple[int, ...], lo: float, hi: float, g: torch.Generator) -> Tensor:
    """Uniform samples in [lo, hi) from the generator g."""
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def make_shapes(
    n: int,
    *,
    seed: int,
    size: int = 32,
    max_objects: int = 1,
    clutter: float = 0.5,
    noise: float = 0.08,
    position_jitter: float = 1.0,
    rotation: float = 180.0,
) -> Split:
    """Generate `n` images of shapes: x (n, 3, size, size) uint8, y (n,) int64 (class of object 0).

    Object 0 is the largest; with `max_objects` > 1 each image holds 1..max_objects objects,
    later ones drawn over earlier ones. extras: "masks" (n, size, size) uint8 (0 background,
    class + 1 on each object's visible pixels), "boxes" (n, max_objects, 4) float32
    (x0, y0, x1, y1) in pixel-edge coordinates, tight around each object's whole shape
    (pixel (i, j) spans x in [j, j+1], y in [i, i+1]; zeros for absent objects),
    "box_labels" (n, max_objects) int64 (-1 for absent objects) and "captions" (n strings).
    `clutter` scales the number of background lines and dots; `noise` is the standard
    deviation of the Gaussian pixel noise on a [0, 1] scale. `position_jitter` is how far
    object 0 may wander from the image centre, as a fraction of the room it has (1: anywhere
    it fits, 0: always centred, which lets a linear model on raw pixels do much better).
    `rotation` is the largest angle, in degrees, an object is turned by (180: any way, the
    default; 20: all roughly upright, as things stand in photographs, which gives RotNet's
    rotations something to predict). Hearts are never turned more than ±26°.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if max_objects < 1:
        raise ValueError(f"max_objects must be >= 1, got {max_objects}")
    if not 0.0 <= position_jitter <= 1.0:
        raise ValueError(f"position_jitter must be in [0, 1], got {position_jitter}")
    if not 0.0 <= rotation <= 180.0:
        raise ValueError(f"rotation must be in [0, 180] degrees, got {rotation}")
    if clutter < 0 or noise < 0:
        raise ValueError(f"clutter and noise must be >= 0, got {clutter} and {noise}")
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    K = max_objects
    g = torch.Generator().manual_seed(int(seed))

    # ---- objects: (n, K) parameters
    main = (torch.arange(n, dtype=torch.int64) % len(SHAPE_CLASSES))[torch.randperm(n, generator=g)]  # (n,)
    cls = torch.randint(0, len(SHAPE_CLASSES), (n, K), generator=g)  # (n, K)
    cls[:, 0] = main
    count = torch.randint(1, K + 1, (n,), generator=g)  # (n,)
    present = torch.arange(K)[None, :] < count[:, None]  # (n, K)

    diam = torch.empty(n, K)  # (n, K) object diameter as a fraction of the image
    diam[:, 0] = _uniform((n,), 0.3, 0.7, g) if K == 1 else _uniform((n,), 0.35, 0.6, g)
    if K > 1:
        diam[:, 1:] = (diam[:, :1] * _uniform((n, K - 1), 0.55, 0.9, g)).clamp_min(0.22)
    radius = diam * size / 2  # (n, K) in pixels: the object fits this disc

    if rotation >= 180:
        angle = _uniform((n, K), 0.0, 2 * math.pi, g)  # (n, K) any way round
    else:  # the same draws, a narrower range: the rest of the stream, and so every other parameter, stays as it was
        angle = _uniform((n, K), -math.radians(rotation), math.radians(rotation), g)  # (n, K)
    turn = min(0.45, math.radians(rotation))
    heart_angle = _uniform((n, K), -turn, turn, g)  # (n, K) hearts stay roughly upright
    angle = torch.where(cls == _HEART, heart_angle, angle)
    squeeze = _uniform((n, K), 0.78, 1.0, g)  # (n, K) aspect: one axis squeezed
    squeeze = torch.where(cls == _CIRCLE, 0.92 + 0.08 * squeeze, squeeze)  # circles stay round
    squeeze = torch.where((cls == _ELLIPSE) | (cls == _RING), torch.ones_like(squeeze), squeeze)
    squeeze_u = torch.rand(n, K, generator=g) < 0.5  # (n, K)
    sx = torch.where(squeeze_u, squeeze, torch.ones_like(squeeze))  # (n, K)
    sy = torch.where(squeeze_u, torch.ones_like(squeeze), squeeze)  # (n, K)
    shape_param = _uniform((n, K), 0.4, 0.58, g)  # (n, K) ellipse minor semi-axis

    # centres: object 0 anywhere it fits; later ones at the best of 8 candidate spots
    lo, hi = radius + 0.5, size - radius - 0.5  # (n, K)
    cand = torch.rand(n, K, 8, 2, generator=g)  # (n, K, 8, 2)
    centre = torch.empty(n, K, 2)  # (n, K, 2) (x, y) in pixels
    free = lo[:, 0, None] + (hi - lo)[:, 0, None] * cand[:, 0, 0]  # (n, 2) anywhere it fits
    centre[:, 0] = size / 2 + position_jitter * (free - size / 2)
    for k in range(1, K):
        spots = lo[:, k, None, None] + (hi - lo)[:, k, None, None] * cand[:, k]  # (n, 8, 2)
        gap = torch.cdist(spots, centre[:, :k]) - radius[:, None, :k] - radius[:, k, None, None]  # (n, 8, k)
        best = gap.amin(dim=2).argmax(dim=1)  # (n,)
        centre[:, k] = spots[torch.arange(n), best]

    # ---- background: base colour plus a linear gradient; most images are light-on-dark
    light_on_dark = torch.rand(n, generator=g) < LIGHT_ON_DARK  # (n,)
    bg_raw = torch.rand(n, 3, generator=g)  # (n, 3)
    bg_base = torch.where(light_on_dark[:, None], 0.6 * bg_raw, 0.45 + 0.55 * bg_raw)  # (n, 3)
    bg_grad = _uniform((n, 2, 3), -0.22, 0.22, g)  # (n, 2, 3) change across x and y
    rel = centre / size - 0.5  # (n, K, 2)
    bg_at = (bg_base[:, None] + torch.einsum("nkd,ndc->nkc", rel, bg_grad)).clamp(0, 1)  # (n, K, 3)

    # ---- object colours: a random palette colour that contrasts with the background there
    diff = _PALETTE_RGB[None, None] - bg_at[:, :, None]  # (n, K, P, 3)
    dist = diff.norm(dim=-1)  # (n, K, P)
    dluma = diff @ _LUMA  # (n, K, P) object minus background luminance
    polarity = torch.where(light_on_dark, 1.0, -1.0)[:, None, None]  # (n, 1, 1)
    ok = (dist > 0.45) & (dluma * polarity > 0.2)  # (n, K, P)
    key = torch.where(ok, 1.0 + torch.rand(dist.shape, generator=g), dist / 10)  # (n, K, P)
    colour = _PALETTE_RGB[key.argmax(dim=-1)]  # (n, K, 3)
    colour = (colour + _uniform((n, K, 3), -0.06, 0.06, g)).clamp(0, 1)  # (n, K, 3)
    shade = _uniform((n, K, 2), -0.12, 0.12, g)  # (n, K, 2) brightness ramp across the object

    # ---- clutter: thin lines and small dots behind the objects
    n_lines, n_dots = round(6 * clutter), round(12 * clutter)
    L = n_lines + n_dots
    seg_a = torch.rand(n, L, 2, generator=g) * size  # (n, L, 2)
    seg_len = _uniform((n, L), 4.0, 16.0, g)  # (n, L)
    seg_len[:, n_lines:] = 0.0  # dots are zero-length segments
    seg_dir = _uniform((n, L), 0.0, 2 * math.pi, g)  # (n, L)
    seg_b = seg_a + seg_len[..., None] * torch.stack([seg_dir.cos(), seg_dir.sin()], dim=-1)  # (n, L, 2)
    seg_half = torch.cat(
        [_uniform((n, n_lines), 0.35, 0.7, g), _uniform((n, n_dots), 0.6, 1.3, g)], dim=1
    )  # (n, L) half-width in pixels
    seg_alpha = _uniform((n, L), 0.5, 1.0, g)  # (n, L)
    seg_on = torch.rand(n, L, generator=g) < torch.rand(n, 1, generator=g)  # (n, L) clutter level per image
    seg_alpha = seg_alpha * seg_on
    seg_colour = torch.rand(n, L, 3, generator=g)  # (n, L, 3)

    # ---- render in chunks
    gx, gy = pixel_grid(size, size)  # (1, W), (H, 1)
    ramp_x, ramp_y = gx / size - 0.5, gy / size - 0.5  # (1, W), (H, 1)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    masks = torch.zeros(n, size, size, dtype=torch.uint8)
    boxes = torch.zeros(n, K, 4)
    chunk = max(16, _CHUNK // K)
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        m = c1 - c0
        img = bg_base[c0:c1, :, None, None] + (
            bg_grad[c0:c1, 0, :, None, None] * ramp_x + bg_grad[c0:c1, 1, :, None, None] * ramp_y
        )  # (m, 3, H, W)

        if L:
            d = segment_distance_sq(seg_a[c0:c1], seg_b[c0:c1], gx, gy).sqrt_()  # (m, L, H, W)
            cover = (seg_half[c0:c1, :, None, None] + 0.5 - d).clamp_(0, 1) * seg_alpha[c0:c1, :, None, None]
            # clutter is sparse: where marks cross, the most opaque one is painted
            a, top = cover.max(dim=1, keepdim=True)  # (m, 1, H, W)
            ink = seg_colour[c0:c1].transpose(1, 2).gather(2, top.flatten(2).expand(-1, 3, -1))  # (m, 3, H*W)
            img = img + a * (ink.view(m, 3, size, size) - img)  # (m, 3, H, W)

        # object frame: translate, rotate, stretch, scale into the unit disc
        dx = gx - centre[c0:c1, :, 0, None, None]  # (m, K, 1, W)
        dy = gy - centre[c0:c1, :, 1, None, None]  # (m, K, H, 1)
        cos, sin = angle[c0:c1].cos()[..., None, None], angle[c0:c1].sin()[..., None, None]  # (m, K, 1, 1)
        r = radius[c0:c1, :, None, None]  # (m, K, 1, 1)
        u = (dx * cos + dy * sin) / (r * sx[c0:c1, :, None, None])  # (m, K, H, W)
        v = (dy * cos - dx * sin) / (r * sy[c0:c1, :, None, None])  # (m, K, H, W)
        px_per_unit = (r * torch.minimum(sx, sy)[c0:c1, :, None, None]).reshape(m * K, 1, 1)  # (m*K, 1, 1)
        u, v = u.reshape(m * K, size, size), v.reshape(m * K, size, size)  # (m*K, H, W)
        flat_cls = cls[c0:c1].reshape(-1)  # (m*K,)
        flat_p = shape_param[c0:c1].reshape(-1, 1, 1)  # (m*K, 1, 1)
        sd = torch.empty(m * K, size, size)  # (m*K, H, W) signed distance in pixels
        for k, fn in enumerate(_SDF):
            sel = (flat_cls == k).nonzero().squeeze(1)  # (M,)
            if sel.numel():
                sd[sel] = fn(u[sel], v[sel], flat_p[sel]) * px_per_unit[sel]
        sd = sd.reshape(m, K, size, size)  # (m, K, H, W)
        on = present[c0:c1, :, None, None]  # (m, K, 1, 1)
        alpha = (0.5 - sd).clamp_(0, 1) * on  # (m, K, H, W)
        inside = (sd < 0) & on  # (m, K, H, W)

        light = 1.0 + shade[c0:c1, :, 0, None, None] * u.reshape(m, K, size, size).clamp(-1, 1) + shade[
            c0:c1, :, 1, None, None
        ] * v.reshape(m, K, size, size).clamp(-1, 1)  # (m, K, H, W)
        lab = torch.zeros(m, size, size, dtype=torch.uint8)  # (m, H, W)
        for k in range(K):
            obj = (colour[c0:c1, k, :, None, None] * light[:, k, None]).clamp(0, 1)  # (m, 3, H, W)
            img = img + alpha[:, k, None] * (obj - img)
            lab = torch.where(inside[:, k], (cls[c0:c1, k] + 1).to(torch.uint8)[:, None, None], lab)
        masks[c0:c1] = lab

        rows, cols = inside.any(dim=3), inside.any(dim=2)  # (m, K, H), (m, K, W)
        idx = torch.arange(size, dtype=torch.float32)  # (W,)
        big = float(size)
        x0 = torch.where(cols, idx, big).amin(dim=2)  # (m, K)
        x1 = torch.where(cols, idx + 1, -1.0).amax(dim=2)  # (m, K)
        y0 = torch.where(rows, idx, big).amin(dim=2)  # (m, K)
        y1 = torch.where(rows, idx + 1, -1.0).amax(dim=2)  # (m, K)
        box = torch.stack([x0, y0, x1, y1], dim=-1)  # (m, K, 4)
        boxes[c0:c1] = torch.where(inside.flatten(2).any(dim=2)[..., None], box, torch.zeros_like(box))

        if noise > 0:
            img = img + noise * torch.randn(m, 3, size, size, generator=g)  # (m, 3, H, W)
        images[c0:c1] = img.clamp_(0, 1).mul_(255).round_().to(torch.uint8)

    box_labels = torch.where(present, cls, torch.full_like(cls, -1))  # (n, K)

    # ---- captions from the true parameters
    size_word = torch.bucketize(diam, torch.tensor([0.42, 0.56]))  # (n, K) 0 small, 1 medium, 2 large
    colour_word = torch.cdist(colour.reshape(-1, 3), _PALETTE_RGB).argmin(dim=1).reshape(n, K)  # (n, K)
    cell = torch.bucketize(centre / size, torch.tensor([0.42, 0.58]))  # (n, K, 2) column, row
    table = torch.stack([size_word, colour_word, cls, cell[..., 1], cell[..., 0]], dim=-1).tolist()  # n×K×5
    counts = count.tolist()
    captions = [_caption([tuple(o) for o in objs[:c]]) for objs, c in zip(table, counts)]

    extras = {"masks": masks, "boxes": boxes, "box_labels": box_labels, "captions": captions}
    return Split(images, main, extras)


def shapes_dataset(*, n_train: int, n_val: int, seed: int, **kwargs: Any) -> Dataset:
    """Embedded shapes as a `Dataset` (name "shapes"); kwargs go to `make_shapes`."""
    g = torch.Generator().manual_seed(int(seed))
    s_train, s_val = torch.randint(0, 2**62, (2,), generator=g).tolist()
    train = make_shapes(n_train, seed=s_train, **kwargs)
    val = make_shapes(n_val, seed=s_val, **kwargs)
    size = int(train.x.shape[-1])
    mean, std = channel_stats(train.x) if n_train > 1 else ((0.5,) * 3, (0.25,) * 3)
    return Dataset(
        name="shapes",
        kind="image",
        train=train,
        val=val,
        classes=SHAPE_CLASSES,
        input_shape=(3, size, size),
        mean=mean,
        std=std,
    )
