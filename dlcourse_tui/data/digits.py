"""Handwriting-like digits 0-9: 28×28 grayscale, white strokes on black, like MNIST.

Each digit is a fixed set of cubic Bézier strokes in a unit box (x right, y down).
For every image the stroke control points are moved by a smooth random displacement
field (joints move together, so strokes stay connected) plus a small jitter of the
inner control points, the whole digit gets a random affine map (rotation ±15°, scale,
width, slant, translation), and the strokes are drawn anti-aliased with a random pen
width: a pixel's intensity comes from its distance to the nearest stroke segment,
computed for every image, segment and pixel at once. Gaussian pixel noise goes on top.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from dlcourse_tui.data.base import Dataset, Split, channel_stats

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
DIGIT_SIZE = 28  # side of a digit image in pixels

Point = tuple[float, float]
Cubic = tuple[Point, Point, Point, Point]


# ---------------------------------------------------------------------------- strokes


def _line(p: Point, q: Point) -> list[Cubic]:
    """A straight stroke from p to q as one cubic."""
    c1 = (p[0] + (q[0] - p[0]) / 3, p[1] + (q[1] - p[1]) / 3)
    c2 = (p[0] + 2 * (q[0] - p[0]) / 3, p[1] + 2 * (q[1] - p[1]) / 3)
    return [(p, c1, c2, q)]


def _ellipse_point(cx: float, cy: float, rx: float, ry: float, deg: float) -> Point:
    """The point at angle `deg` (degrees, y down: 90 is the bottom) on an ellipse."""
    a = math.radians(deg)
    return (cx + rx * math.cos(a), cy + ry * math.sin(a))


def _arc(cx: float, cy: float, rx: float, ry: float, deg0: float, deg1: float) -> list[Cubic]:
    """An elliptical arc from angle deg0 to deg1 as cubics of at most 120° each."""
    pieces = max(1, math.ceil(abs(deg1 - deg0) / 120.0 - 1e-9))
    step = (deg1 - deg0) / pieces
    k = 4.0 / 3.0 * math.tan(math.radians(step) / 4.0)  # handle length per unit radius
    out: list[Cubic] = []
    for i in range(pieces):
        a0 = math.radians(deg0 + i * step)
        a1 = math.radians(deg0 + (i + 1) * step)
        p0 = (cx + rx * math.cos(a0), cy + ry * math.sin(a0))
        p3 = (cx + rx * math.cos(a1), cy + ry * math.sin(a1))
        p1 = (p0[0] - k * rx * math.sin(a0), p0[1] + k * ry * math.cos(a0))
        p2 = (p3[0] + k * rx * math.sin(a1), p3[1] - k * ry * math.cos(a1))
        out.append((p0, p1, p2, p3))
    return out


def _digit_strokes() -> list[list[Cubic]]:
    """The ten digits as lists of cubic Bézier strokes in the unit box."""
    d: list[list[Cubic]] = []
    # 0: a tall ellipse, closed with a little overlap at the top
    d.append(_arc(0.5, 0.5, 0.23, 0.37, -100, 275))
    # 1: one slightly slanted stroke
    d.append(_line((0.55, 0.1), (0.46, 0.9)))
    # 2: hook at the top, diagonal to the bottom left, base line
    top = _arc(0.5, 0.31, 0.23, 0.2, 190, 380)
    hook_end = top[-1][3]
    d.append(top + [(hook_end, (0.68, 0.58), (0.38, 0.74), (0.22, 0.88))] + _line((0.22, 0.88), (0.8, 0.87)))
    # 3: two bumps opening to the left
    d.append(_arc(0.48, 0.29, 0.21, 0.18, 200, 450) + _arc(0.48, 0.68, 0.25, 0.21, -90, 150))
    # 4: open top: left stroke, cross bar, long right stroke
    d.append(_line((0.3, 0.1), (0.2, 0.6)) + _line((0.2, 0.6), (0.8, 0.6)) + _line((0.65, 0.14), (0.63, 0.92)))
    # 5: top bar, short down stroke, round belly
    belly = _arc(0.49, 0.64, 0.25, 0.23, 225, 505)
    belly_start = belly[0][0]
    d.append(_line((0.76, 0.12), (0.34, 0.12)) + _line((0.34, 0.12), belly_start) + belly)
    # 6: a curved stem falling into a closed bottom loop
    d.append([((0.7, 0.1), (0.45, 0.14), (0.27, 0.38), (0.27, 0.67))] + _arc(0.5, 0.67, 0.23, 0.22, 180, 540))
    # 7: top bar and a long, slightly curved diagonal
    d.append(_line((0.22, 0.13), (0.78, 0.13)) + [((0.78, 0.13), (0.65, 0.38), (0.5, 0.62), (0.42, 0.9))])
    # 8: a small loop on a bigger one
    d.append(_arc(0.5, 0.29, 0.18, 0.18, 90, 450) + _arc(0.5, 0.69, 0.23, 0.21, -90, 270))
    # 9: a closed head and a stem
    head = _arc(0.48, 0.33, 0.21, 0.2, 0, 360)
    d.append(head + [((0.69, 0.33), (0.69, 0.55), (0.65, 0.75), (0.6, 0.9))])
    return d


def _stroke_table() -> tuple[Tensor, tuple[int, ...]]:
    """(10, S, 4, 2) control points of every digit, padded by repeating its last stroke, and stroke counts."""
    strokes = _digit_strokes()
    s_max = max(len(s) for s in strokes)
    table = torch.zeros(10, s_max, 4, 2)  # (10, S, 4, 2)
    for digit, cubics in enumerate(strokes):
        padded = cubics + [cubics[-1]] * (s_max - len(cubics))
        table[digit] = torch.tensor(padded, dtype=torch.float32)
    return table, tuple(len(s) for s in strokes)


_STROKES, _STROKE_COUNT = _stroke_table()  # (10, S, 4, 2), 10 counts
SAMPLES_PER_STROKE = 5  # points along each cubic: 4 segments


def _bernstein(t: Tensor) -> Tensor:
    """(T, 4) cubic Bernstein weights at parameters t (T,)."""
    u = 1.0 - t
    return torch.stack([u**3, 3 * u**2 * t, 3 * u * t**2, t**3], dim=1)


# ---------------------------------------------------------------------------- geometry


def pixel_grid(h: int, w: int) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates: gx (1, W) and gy (H, 1), pixel (i, j) at (j + 0.5, i + 0.5)."""
    gx = (torch.arange(w, dtype=torch.float32) + 0.5)[None, :]  # (1, W)
    gy = (torch.arange(h, dtype=torch.float32) + 0.5)[:, None]  # (H, 1)
    return gx, gy


def segment_distance_sq(a: Tensor, b: Tensor, gx: Tensor, gy: Tensor) -> Tensor:
    """Squared distance from every pixel centre to every segment a→b.

    a, b: (..., 2) endpoints (x, y) in pixels; gx (1, W), gy (H, 1) from `pixel_grid`.
    Returns (..., H, W). Zero-length segments give the distance to the point.
    """
    ax, ay = a[..., 0, None, None], a[..., 1, None, None]  # (..., 1, 1)
    abx = b[..., 0, None, None] - ax  # (..., 1, 1)
    aby = b[..., 1, None, None] - ay  # (..., 1, 1)
    len_sq = abx * abx + aby * aby  # (..., 1, 1)
    dx = gx - ax  # (..., 1, W)
    dy = gy - ay  # (..., H, 1)
    proj = dx * abx + dy * aby  # (..., H, W) (p - a)·(b - a)
    t = (proj / len_sq.clamp_min(1e-8)).clamp_(0.0, 1.0)  # (..., H, W) nearest point a + t (b - a)
    # |p - a - t (b - a)|² = |p - a|² + t (t |b - a|² - 2 (p - a)·(b - a)), in place to spare memory
    out = (t * len_sq).sub_(proj).sub_(proj).mul_(t)  # (..., H, W)
    return out.add_(dx * dx + dy * dy).clamp_min_(0.0)  # (..., H, W)


# ---------------------------------------------------------------------------- generator

_CHUNK = 1024  # images per rendering step: bounds the (k, segments, H, W) temporaries


def make_digits(n: int, *, seed: int, noise: float = 0.05) -> Split:
    """Generate `n` MNIST-like digits: x (n, 1, 28, 28) uint8, y (n,) int64 balanced over 0-9."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    size = DIGIT_SIZE
    g = torch.Generator().manual_seed(int(seed))
    y = (torch.arange(n, dtype=torch.int64) % 10)[torch.randperm(n, generator=g)]  # (n,)

    # per-image random parameters, all drawn up front so chunking cannot change them
    field = 0.035 * torch.randn(n, 2, 3, 3, generator=g)  # (n, 2, 3, 3) smooth warp of the unit box
    inner_jitter = 0.015 * torch.randn(n, _STROKES.shape[1], 2, 2, generator=g)  # (n, S, 2, 2)
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(15)  # (n,)
    scale = 0.8 + 0.2 * torch.rand(n, generator=g)  # (n,)
    width = 0.75 + 0.4 * torch.rand(n, generator=g)  # (n,) relative x scale
    shear = (torch.rand(n, generator=g) * 2 - 1) * 0.25  # (n,) slant
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.06  # (n, 2) in unit-box units
    pen = 1.4 + 1.8 * torch.rand(n, generator=g)  # (n,) stroke width in pixels
    peak = 0.85 + 0.15 * torch.rand(n, generator=g)  # (n,) ink intensity

    bern = _bernstein(torch.linspace(0, 1, SAMPLES_PER_STROKE))  # (T, 4)
    gx, gy = pixel_grid(size, size)
    out = torch.empty(n, 1, size, size, dtype=torch.uint8)
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        m = hi - lo
        ctrl = _STROKES[y[lo:hi]].clone()  # (m, S, 4, 2)
        # smooth displacement: the same point always moves the same way, joints stay joined
        grid = ctrl.reshape(m, -1, 1, 2) * 2 - 1  # (m, S*4, 1, 2) in [-1, 1]
        disp = F.grid_sample(field[lo:hi], grid, mode="bilinear", padding_mode="border", align_corners=True)
        ctrl = ctrl + disp[..., 0].permute(0, 2, 1).reshape(ctrl.shape)  # (m, S, 4, 2)
        ctrl[:, :, 1:3] += inner_jitter[lo:hi]  # (m, S, 2, 2) inner handles only
        # affine about the box centre: rotation · shear · scale, then translation
        c, s = torch.cos(angle[lo:hi]), torch.sin(angle[lo:hi])  # (m,)
        sx = scale[lo:hi] * width[lo:hi]  # (m,)
        sy = scale[lo:hi]  # (m,)
        sh = shear[lo:hi]  # (m,)
        # A = R @ [[1, sh], [0, 1]] @ diag(sx, sy)
        a00, a01 = c * sx, (c * sh - s) * sy  # (m,)
        a10, a11 = s * sx, (s * sh + c) * sy  # (m,)
        p = ctrl - 0.5  # (m, S, 4, 2)
        px = a00[:, None, None] * p[..., 0] + a01[:, None, None] * p[..., 1]  # (m, S, 4)
        py = a10[:, None, None] * p[..., 0] + a11[:, None, None] * p[..., 1]  # (m, S, 4)
        ctrl = torch.stack([px, py], dim=-1) + 0.5 + shift[lo:hi, None, None, :]  # (m, S, 4, 2)
        ctrl = ctrl * size  # (m, S, 4, 2) in pixels
        dist = torch.empty(m, size, size)  # (m, H, W) distance to the nearest stroke
        yc = y[lo:hi]  # (m,)
        for digit, strokes in enumerate(_STROKE_COUNT):  # only the digit's real strokes
            idx = (yc == digit).nonzero().squeeze(1)  # (k,)
            if idx.numel() == 0:
                continue
            pts = torch.einsum("tc,kscd->kstd", bern, ctrl[idx, :strokes])  # (k, s, T, 2)
            a = pts[:, :, :-1].reshape(len(idx), -1, 2)  # (k, s*(T-1), 2)
            b = pts[:, :, 1:].reshape(len(idx), -1, 2)  # (k, s*(T-1), 2)
            dist[idx] = segment_distance_sq(a, b, gx, gy).amin(dim=1).sqrt_()  # (k, H, W)
        # soft pen: full ink inside the stroke, smooth 1.5-pixel fall-off at its edge
        edge = ((pen[lo:hi, None, None] / 2 + 0.75 - dist) / 1.5).clamp_(0.0, 1.0)  # (m, H, W)
        ink = edge * edge * (3 - 2 * edge) * peak[lo:hi, None, None]  # (m, H, W)
        if noise > 0:
            ink = ink + noise * torch.randn(m, size, size, generator=g)  # (m, H, W)
        out[lo:hi, 0] = ink.clamp_(0.0, 1.0).mul_(255).round_().to(torch.uint8)
    return Split(out, y)


def digits_dataset(*, n_train: int, n_val: int, seed: int, **kwargs: float) -> Dataset:
    """MNIST-like embedded digits as a `Dataset` (name "digits"); kwargs go to `make_digits`."""
    g = torch.Generator().manual_seed(int(seed))
    s_train, s_val = torch.randint(0, 2**62, (2,), generator=g).tolist()
    train = make_digits(n_train, seed=s_train, **kwargs)
    val = make_digits(n_val, seed=s_val, **kwargs)
    mean, std = channel_stats(train.x) if n_train > 1 else ((0.0,), (1.0,))
    return Dataset(
        name="digits",
        kind="image",
        train=train,
        val=val,
        classes=DIGIT_CLASSES,
        input_shape=(1, DIGIT_SIZE, DIGIT_SIZE),
        mean=mean,
        std=std,
    )

