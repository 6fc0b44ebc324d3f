"""Pixel arithmetic on numpy arrays: numpy in, numpy out, no torch.

Pixels are ``uint8`` arrays, (H, W, 3) RGB or (H, W) grayscale. Torch-side code
hands tensors over as ``tensor.detach().cpu().numpy()``; :func:`chw_to_hwc`
turns their channel-first layout around.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
import unicodedata
from pathlib import Path

import numpy as np

__all__ = [
    "as_uint8",
    "to_rgb",
    "chw_to_hwc",
    "tile",
    "upscale",
    "colormap",
    "normalize_to_uint8",
    "save_png",
    "boundary_picture",
    "data_to_grid",
    "draw_label",
    "CLASS_COLORS",
]

# Strong colours for class points (class 0 blue, class 1 orange, then more).
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (33, 102, 172),
    (230, 97, 1),
    (27, 158, 119),
    (117, 112, 179),
    (231, 41, 138),
    (102, 166, 30),
    (166, 118, 29),
    (90, 90, 90),
)
# Soft tints for the two regions of a decision boundary picture.
_SOFT0 = np.array([208, 228, 247], dtype=np.float32)
_SOFT1 = np.array([248, 188, 138], dtype=np.float32)
_CONTOUR = np.array([70, 70, 70], dtype=np.float32)

_DIVERGING_STOPS = np.array(
    [(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)],
    dtype=np.float64,
)
_VIRIDIS_STOPS = np.array(
    [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
    dtype=np.float64,
)
_NAN_COLOR = (40, 40, 40)


def as_uint8(pixels: np.ndarray) -> np.ndarray:
    """Return ``pixels`` as uint8: uint8 as is, bool as 0/255, floats read as [0, 1]
    (clipped, NaN → 0), other integers clipped to [0, 255]."""
    a = np.asarray(pixels)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(a, 0, 255).astype(np.uint8)
    raise TypeError(f"cannot read pixels of dtype {a.dtype}")


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) pixels → (H, W, 3) uint8 RGB."""
    a = as_uint8(pixels)
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim == 3:
        c = a.shape[2]
        if c == 3:
            return a
        if c == 1:
            return np.repeat(a, 3, axis=2)
        if c == 4:
            return np.ascontiguousarray(a[:, :, :3])
    raise ValueError(f"expected (H, W) or (H, W, 1|3|4) pixels, got shape {a.shape}")


def chw_to_hwc(array: np.ndarray) -> np.ndarray:
    """(C, H, W) → (H, W, C), and (N, C, H, W) → (N, H, W, C); 2-D arrays pass through."""
    a = np.asarray(array)
    if a.ndim == 2:
        return a
    if a.ndim == 3:
        return np.ascontiguousarray(a.transpose(1, 2, 0))
    if a.ndim == 4:
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1))
    raise ValueError(f"expected (C, H, W) or (N, C, H, W), got shape {a.shape}")


def tile(
    images: np.ndarray,
    ncols: int | None = None,
    pad: int = 1,
    pad_value: int = 40,
) -> np.ndarray:
    """Lay N images (N, H, W[, C]) out in a grid → (H', W', 3) uint8.

    ``ncols`` defaults to ceil(sqrt(N)); rows = ceil(N / ncols). ``pad`` pixels of
    ``pad_value`` grey go between images (not around the border), so the result is
    (rows·H + (rows−1)·pad, ncols·W + (ncols−1)·pad, 3). Empty cells are grey.
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("tile() needs at least one image")
        images = np.stack([to_rgb(im) for im in images])
    a = np.asarray(images)
    if a.ndim not in (3, 4):
        raise ValueError(f"expected (N, H, W) or (N, H, W, C) images, got shape {a.shape}")
    n = a.shape[0]
    if n == 0:
        raise ValueError("tile() needs at least one image")
    if ncols is None:
        ncols = math.ceil(math.sqrt(n))
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    pad = max(0, int(pad))
    h, w = a.shape[1], a.shape[2]
    out_h = nrows * h + (nrows - 1) * pad
    out_w = ncols * w + (ncols - 1) * pad
    out = np.full((out_h, out_w, 3), np.uint8(np.clip(pad_value, 0, 255)), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        y, x = r * (h + pad), c * (w + pad)
        out[y : y + h, x : x + w] = to_rgb(a[i])
    return out


def upscale(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of (H, W[, C]) pixels by an integer factor."""
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"factor must be ≥ 1, got {factor}")
    a = np.asarray(pixels)
    if factor == 1:
        return a
    return np.repeat(np.repeat(a, factor, axis=0), factor, axis=1)


def _interp_stops(t: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Map t in [0, 1] through evenly spaced colour stops → (..., 3) float."""
    pos = np.linspace(0.0, 1.0, len(stops))
    return np.stack([np.interp(t, pos, stops[:, k]) for k in range(3)], axis=-1)


def colormap(
    values: np.ndarray,
    vmin: float | None = None,
    vmax: float | None = None,
    kind: str = "diverging",
) -> np.ndarray:
    """Colour a 2-D float array → (H, W, 3) uint8.

    ``"diverging"``: blue (negative) – white (0) – red (positive), symmetric around
    zero, scaled by max(|vmin|, |vmax|) (default: the largest |value|), so weight
    templates of different signs compare fairly. ``"viridis"``: a viridis-like
    sequential map from vmin (dark purple) to vmax (yellow). ``"gray"``: black to
    white. NaNs are dark grey; constant input is the map's middle colour.
    """
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if kind == "diverging":
        if vmin is None and vmax is None:
            m = float(np.max(np.abs(v[finite]))) if finite.any() else 0.0
        else:
            lo = abs(vmin) if vmin is not None else 0.0
            hi = abs(vmax) if vmax is not None else 0.0
            m = max(lo, hi)
        t = 0.5 + 0.5 * v / m if m > 0 else np.full_like(v, 0.5)
        stops = _DIVERGING_STOPS
    elif kind in ("viridis", "gray", "grey"):
        lo = float(np.min(v[finite])) if vmin is None and finite.any() else (vmin or 0.0)
        hi = float(np.max(v[finite])) if vmax is None and finite.any() else (vmax or 0.0)
        t = (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)
        stops = _VIRIDIS_STOPS if kind == "viridis" else np.array([(0, 0, 0), (255, 255, 255)], float)
    else:
        raise ValueError(f"unknown colormap kind {kind!r}: use 'diverging', 'viridis' or 'gray'")
    t = np.clip(np.where(finite, t, 0.5), 0.0, 1.0)
    rgb = (_interp_stops(t, stops) + 0.5).astype(np.uint8)
    if not finite.all():
        rgb[~finite] = _NAN_COLOR
    return rgb


def normalize_to_uint8(values: np.ndarray) -> np.ndarray:
    """Min-max scale any array to uint8 [0, 255] (same shape); constant input → 128, NaN → 0."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        return np.zeros(v.shape, dtype=np.uint8)
    lo, hi = float(v[finite].min()), float(v[finite].max())
    if not hi > lo:
        out = np.full(v.shape, 128, dtype=np.uint8)
    else:
        out = ((np.clip(v, lo, hi) - lo) * (255.0 / (hi - lo)) + 0.5)
        out = np.nan_to_num(out, nan=0.0).astype(np.uint8)
    out[~finite] = 0
    return out


@functools.lru_cache(maxsize=8)
def _label_font(size: int):  # noqa: ANN202 - a Pillow font
    """Pillow's built-in font at `size` pixels (a bitmap font of about 11 px on Pillow < 10.1)."""
    from PIL import ImageFont  # lazy, as in save_png

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        return ImageFont.load_default()


def _ascii(text: str) -> str:
    """`text` in printable ASCII: accents dropped (NFKD), anything else as "?"."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    return "".join(c if " " <= c <= "~" else "?" for c in decomposed if not unicodedata.combining(c))


def draw_label(
    pixels: np.ndarray,
    text: str,
    xy: tuple[int, int] = (0, 0),
    *,
    anchor: str = "lt",
    color: tuple[int, int, int] = (235, 235, 235),
    background: tuple[int, int, int] | None = None,
    size: int = 11,
    pad: int = 1,
) -> np.ndarray:
    """A copy of (H, W, 3) uint8 ``pixels`` with ``text`` drawn at ``xy`` = (x, y) in
    Pillow's built-in font (nothing is read from disk or downloaded).

    ``anchor`` says which point of the text lands on ``xy``, as in Pillow: its first
    letter ``l``/``m``/``r`` (left edge, middle, right edge), its second ``t``/``m``/``b``
    (top, middle, bottom of the inked text). ``background``, when given, fills the
    text's box grown by ``pad`` pixels first: a legible label on a busy picture, a box's
    caption. Text that runs past the border is clipped; the shape never changes. The
    built-in font has ASCII glyphs only: accents are dropped (é → e) and other
    characters drawn as "?". Grey (H, W) pixels come back RGB.
    """
    from PIL import Image, ImageDraw

    a = to_rgb(pixels)
    text = _ascii(text)
    if not text:
        return a.copy()
    if len(anchor) != 2 or anchor[0] not in "lmr" or anchor[1] not in "tmb":
        raise ValueError(f"anchor={anchor!r}: use two letters, l/m/r then t/m/b (e.g. 'lt', 'mt', 'mm')")
    font = _label_font(max(1, int(size)))
    img = Image.fromarray(np.ascontiguousarray(a))
    draw = ImageDraw.Draw(img)
    try:
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)  # the inked box of text drawn at (0, 0)
    except ValueError:  # Pillow < 9.2 measures bitmap fonts only by getsize
        (x1, y1), x0, y0 = font.getsize(text), 0, 0
    w, h = x1 - x0, y1 - y0
    left = xy[0] - {"l": 0, "m": w // 2, "r": w}[anchor[0]]
    top = xy[1] - {"t": 0, "m": h // 2, "b": h}[anchor[1]]
    if background is not None:
        draw.rectangle((left - pad, top - pad, left + w - 1 + pad, top + h - 1 + pad), fill=tuple(background))
    draw.text((left - x0, top - y0), text, font=font, fill=tuple(color))
    return np.asarray(img, dtype=np.uint8).copy()


def save_png(pixels: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write pixels as a PNG atomically (temp file in the same folder, then
    ``os.replace``); parent folders are created. Grayscale stays one channel."""
    from PIL import Image  # lazy: Pillow costs import time the first paint does not need

    a = as_uint8(pixels)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ValueError(f"cannot save pixels of shape {a.shape} as PNG")
    img = Image.fromarray(np.ascontiguousarray(a))  # mode from shape: L, RGB or RGBA
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            img.save(fh, format="PNG")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return target


def data_to_grid(
    points: np.ndarray,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    grid_size: int,
) -> np.ndarray:
    """Data coordinates (N, 2) → grid pixel coordinates (column, row) for
    :func:`boundary_picture`, for a grid built as
    ``np.meshgrid(np.linspace(*xlim, G), np.linspace(ylim[1], ylim[0], G))``
    (row 0 at the top is y = ylim[1], so y points up as in a plot)."""
    p = np.asarray(points, dtype=np.float64)
    (x0, x1), (y0, y1) = xlim, ylim
    g = grid_size - 1
    col = (p[:, 0] - x0) / (x1 - x0) * g
    row = (y1 - p[:, 1]) / (y1 - y0) * g
    return np.stack([col, row], axis=1)


def _resample_bilinear(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a (G, G') float grid to (size, size), pixel centres aligned."""
    gh, gw = grid.shape

    def coords(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = np.clip((np.arange(size) + 0.5) * n_in / size - 0.5, 0.0, n_in - 1)
        i0 = np.floor(c).astype(np.intp)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (c - i0)

    r0, r1, fr = coords(gh)
    c0, c1, fc = coords(gw)
    top = grid[r0][:, c0] * (1 - fc) + grid[r0][:, c1] * fc
    bot = grid[r1][:, c0] * (1 - fc) + grid[r1][:, c1] * fc
    return top * (1 - fr[:, None]) + bot * fr[:, None]


def _disk_offsets(radius: float) -> list[tuple[int, int]]:
    r = int(math.ceil(radius))
    return [
        (dy, dx)
        for dy in range(-r, r + 1)
        for dx in range(-r, r + 1)
        if dy * dy + dx * dx <= radius * radius + 1e-9
    ]


def boundary_picture(
    grid_probs: np.ndarray,
    points: np.ndarray,
    labels: np.ndarray,
    size: int,
) -> np.ndarray:
    """A 2-class decision boundary picture → (size, size, 3) uint8.

    ``grid_probs[row, col]`` is P(class 1) on a G×G grid, row 0 at the top.
    ``points[:, 0]`` is the column and ``points[:, 1]`` the row of each data point
    in the same grid pixel coordinates (floats; integer values are grid pixel
    centres; see :func:`data_to_grid`). The background is tinted blue (class 0)
    to orange (class 1) by probability, the 0.5 contour is drawn dark, and points
    are dots in strong class colours with a dark rim.
    """
    size = int(size)
    if size < 2:
        raise ValueError(f"size must be ≥ 2, got {size}")
    probs = np.asarray(grid_probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"grid_probs must be (G, G), got shape {probs.shape}")
    probs = np.clip(np.nan_to_num(probs, nan=0.5), 0.0, 1.0)
    gh, gw = probs.shape
    p = _resample_bilinear(probs, size)  # (size, size)

    img = _SOFT0 * (1.0 - p[:, :, None]) + _SOFT1 * p[:, :, None]
    # The 0.5 contour: pixels whose side differs from the right or lower neighbour.
    side = p >= 0.5
    edge = np.zeros_like(side)
    edge[:, :-1] |= side[:, :-1] != side[:, 1:]
    edge[:-1, :] |= side[:-1, :] != side[1:, :]
    if size >= 160:  # keep the line visible after downscaling in a terminal
        thick = edge.copy()
        thick[1:, :] |= edge[:-1, :]
        thick[:, 1:] |= edge[:, :-1]
        edge = thick
    img[edge] = _CONTOUR
    out = (img + 0.5).astype(np.uint8)

    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labs = np.asarray(labels).reshape(-1).astype(np.int64)
    if len(pts) != len(labs):
        raise ValueError(f"{len(pts)} points but {len(labs)} labels")
    keep = np.isfinite(pts).all(axis=1)
    pts, labs = pts[keep], labs[keep]
    if len(pts):
        px = np.rint((pts[:, 0] + 0.5) * size / gw - 0.5).astype(np.intp)
        py = np.rint((pts[:, 1] + 0.5) * size / gh - 0.5).astype(np.intp)
        radius = max(1.0, size / 90.0)
        palette = np.array(CLASS_COLORS, dtype=np.uint8)
        colours = palette[np.mod(labs, len(palette))]
        rim = np.array([30, 30, 30], dtype=np.uint8)
        for r, fill in ((radius + 1.0, None), (radius, colours)):
            for dy, dx in _disk_offsets(r):
                yy, xx = py + dy, px + dx
                ok = (yy >= 0) & (yy < size) & (xx >= 0) & (xx < size)
                out[yy[ok], xx[ok]] = rim if fill is None else fill[ok]
    return out
