"""Masks, boxes, grids and legends drawn into pixels: numpy in, numpy out, no torch.

Pixels are (H, W, 3) uint8 RGB. Boxes are (x0, y0, x1, y1) in pixel-edge coordinates of
the image they belong to (pixel (i, j) spans x in [j, j+1], y in [i, i+1]); functions
that draw on an enlarged copy take the enlargement as `scale`. Every function returns a
new array and leaves its input alone. Text goes through render.images.draw_label
(Pillow's built-in font: nothing read from disk).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dlcourse_tui.render.images import draw_label, to_rgb, upscale

__all__ = [
    "SEGMENT_COLORS",
    "class_colors",
    "color_mask",
    "blend_mask",
    "draw_box",
    "draw_boxes",
    "draw_grid",
    "shade_cells",
    "draw_dot",
    "legend",
    "titled",
    "hstack",
    "vstack",
]

#: Background, then ten strong, distinct class colours (the shape classes of `shapes`/`scenes`).
SEGMENT_COLORS: tuple[tuple[int, int, int], ...] = (
    (24, 24, 24),  # background
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)
BACKGROUND = (40, 40, 40)


def class_colors(n: int) -> np.ndarray:
    """(n, 3) uint8 colours: SEGMENT_COLORS, then golden-angle hues for more classes."""
    base = list(SEGMENT_COLORS[:n])
    i = 0
    while len(base) < n:
        h = (i * 0.618034) % 1.0
        rgb = np.clip(np.abs((h * 6 + np.array([0, 4, 2])) % 6 - 3) - 1, 0, 1)  # a fully saturated hue
        base.append(tuple(int(40 + 200 * c) for c in rgb))
        i += 1
    return np.array(base, dtype=np.uint8).reshape(n, 3)


def color_mask(mask: np.ndarray, colors: np.ndarray | Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """A label map (H, W) of ints 0..C-1 as (H, W, 3) colours (colors: (C, 3), default class_colors)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"a mask is (H, W), got shape {m.shape}")
    if m.size and m.min() < 0:
        raise ValueError("mask labels must be >= 0")
    top = int(m.max()) + 1 if m.size else 1
    table = class_colors(max(top, 11)) if colors is None else np.asarray(colors, dtype=np.uint8)
    if top > len(table):
        raise ValueError(f"mask has label {top - 1} but only {len(table)} colours were given")
    return table[m]  # (H, W, 3)


def blend_mask(pixels: np.ndarray, mask: np.ndarray, alpha: float = 0.5,
               colors: np.ndarray | Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """pixels (H, W, 3) with every labelled pixel (mask > 0) tinted by its class colour."""
    a = to_rgb(pixels).astype(np.float32)
    m = np.asarray(mask)
    if m.shape != a.shape[:2]:
        raise ValueError(f"mask {m.shape} does not fit pixels {a.shape[:2]}")
    tint = color_mask(m, colors).astype(np.float32)
    on = (m > 0)[..., None]
    return np.where(on, (1 - alpha) * a + alpha * tint, a).round().astype(np.uint8)


def _edges(box: Sequence[float], scale: float, h: int, w: int) -> tuple[int, int, int, int] | None:
    """Integer pixel rows/columns of a box's outline on an image of (h, w), or None when off it."""
    x0, y0, x1, y1 = (float(v) * scale for v in box)
    c0, r0 = int(np.floor(x0)), int(np.floor(y0))
    c1, r1 = int(np.ceil(x1)) - 1, int(np.ceil(y1)) - 1  # the last pixel inside
    if c1 < 0 or r1 < 0 or c0 >= w or r0 >= h or c1 < c0 or r1 < r0:
        return None
    return max(c0, 0), max(r0, 0), min(c1, w - 1), min(r1, h - 1)


def draw_box(pixels: np.ndarray, box: Sequence[float], color: Sequence[int] = (255, 255, 255), *,
             width: int = 1, scale: float = 1.0, dashed: bool = False) -> np.ndarray:
    """A copy of pixels with the outline of box (x0, y0, x1, y1) drawn `width` pixels thick,
    inside the box's edges; `scale` maps box coordinates onto these pixels."""
    out = to_rgb(pixels).copy()
    h, w = out.shape[:2]
    e = _edges(box, scale, h, w)
    if e is None:
        return out
    c0, r0, c1, r1 = e
    col = np.asarray(color, dtype=np.uint8)
    t = max(1, int(width))
    keep = np.ones(max(h, w), dtype=bool)
    if dashed:
        keep = (np.arange(max(h, w)) // 3) % 2 == 0
    rows, cols = np.arange(r0, r1 + 1), np.arange(c0, c1 + 1)
    for k in range(t):
        for r in (min(r0 + k, r1), max(r1 - k, r0)):
            sel = cols[keep[cols - c0]]
            out[r, sel] = col
        for c in (min(c0 + k, c1), max(c1 - k, c0)):
            sel = rows[keep[rows - r0]]
            out[sel, c] = col
    return out


def draw_boxes(pixels: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]], labels: Sequence[int] = (),
               texts: Sequence[str] = (), *, colors: np.ndarray | None = None, scale: float = 1.0,
               width: int = 2, font: int = 10, dashed: bool = False) -> np.ndarray:
    """A copy of pixels with each box (N, 4) outlined in its label's colour and, when texts
    are given, a caption (class and score, say) on a filled strip at its top-left corner."""
    out = to_rgb(pixels).copy()
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    table = class_colors(11) if colors is None else np.asarray(colors, dtype=np.uint8)
    for i, box in enumerate(b):
        color = tuple(int(c) for c in table[int(labels[i]) % len(table)]) if len(labels) else (255, 255, 255)
        out = draw_box(out, box, color, width=width, scale=scale, dashed=dashed)
        if i < len(texts) and texts[i]:
            x0, y0 = max(0, int(box[0] * scale)), max(0, int(box[1] * scale))
            luma = 0.2126 * color[0] + 0.7152 * color[1] + 0.0722 * color[2]
            ink = (0, 0, 0) if luma > 140 else (255, 255, 255)
            y = y0 - font - 2 if y0 - font - 2 >= 0 else y0 + width
            out = draw_label(out, texts[i], (x0 + 1, y + 1), color=ink, background=color, size=font)
    return out


def draw_grid(pixels: np.ndarray, cells: int, color: Sequence[int] = (200, 200, 200)) -> np.ndarray:
    """A copy of pixels with the lines of a cells × cells grid over the whole image."""
    out = to_rgb(pixels).copy()
    h, w = out.shape[:2]
    col = np.asarray(color, dtype=np.uint8)
    for k in range(1, cells):
        out[min(h - 1, round(k * h / cells)), :] = col
        out[:, min(w - 1, round(k * w / cells))] = col
    return out


def shade_cells(pixels: np.ndarray, cells: int, which: Sequence[tuple[int, int]],
                color: Sequence[int] = (255, 255, 0), alpha: float = 0.35) -> np.ndarray:
    """A copy of pixels with the grid cells `which` (row, column) of a cells × cells grid tinted."""
    out = to_rgb(pixels).astype(np.float32)
    h, w = out.shape[:2]
    col = np.asarray(color, dtype=np.float32)
    for r, c in which:
        y0, y1 = round(r * h / cells), round((r + 1) * h / cells)
        x0, x1 = round(c * w / cells), round((c + 1) * w / cells)
        out[y0:y1, x0:x1] = (1 - alpha) * out[y0:y1, x0:x1] + alpha * col
    return out.round().astype(np.uint8)


def draw_dot(pixels: np.ndarray, xy: tuple[float, float], color: Sequence[int] = (255, 255, 255), *,
             radius: int = 2, scale: float = 1.0) -> np.ndarray:
    """A copy of pixels with a filled square dot of side 2·radius + 1 at xy (image coordinates · scale)."""
    out = to_rgb(pixels).copy()
    h, w = out.shape[:2]
    x, y = int(xy[0] * scale), int(xy[1] * scale)
    out[max(0, y - radius):min(h, y + radius + 1), max(0, x - radius):min(w, x + radius + 1)] = np.asarray(color, np.uint8)
    return out


def legend(names: Sequence[str], colors: np.ndarray | None = None, *, width: int = 480, font: int = 11,
           swatch: int = 10) -> np.ndarray:
    """A strip (h, width, 3): a colour swatch and each class name, as many to a row as fit."""
    table = class_colors(len(names)) if colors is None else np.asarray(colors, dtype=np.uint8)
    cell = swatch + 6 + max(6 * len(n) for n in names) + 10 if names else width  # about 6 px a character
    per_row = max(1, width // cell)
    rows = -(-len(names) // per_row) if names else 1
    line = max(font, swatch) + 6
    out = np.full((rows * line + 4, width, 3), BACKGROUND, dtype=np.uint8)
    for i, name in enumerate(names):
        r, c = divmod(i, per_row)
        x, y = c * cell + 4, r * line + 4
        out[y:y + swatch, x:x + swatch] = table[i]
        out = draw_label(out, name, (x + swatch + 4, y + swatch // 2), anchor="lm", size=font)
    return out


def titled(pixels: np.ndarray, title: str, *, font: int = 11) -> np.ndarray:
    """pixels with a strip above holding `title`, centred."""
    a = to_rgb(pixels)
    strip = np.full((font + 6, a.shape[1], 3), BACKGROUND, dtype=np.uint8)
    strip = draw_label(strip, title, (a.shape[1] // 2, strip.shape[0] // 2), anchor="mm", size=font)
    return np.concatenate([strip, a], axis=0)


def _pad_to(a: np.ndarray, h: int, w: int) -> np.ndarray:
    out = np.full((h, w, 3), BACKGROUND, dtype=np.uint8)
    out[:a.shape[0], :a.shape[1]] = a
    return out


def hstack(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images side by side, top-aligned, `gap` background pixels apart."""
    ims = [to_rgb(i) for i in images]
    h = max(i.shape[0] for i in ims)
    parts: list[np.ndarray] = []
    for i, im in enumerate(ims):
        if i:
            parts.append(np.full((h, gap, 3), BACKGROUND, dtype=np.uint8))
        parts.append(_pad_to(im, h, im.shape[1]))
    return np.concatenate(parts, axis=1)


def vstack(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images one below the other, left-aligned, `gap` background pixels apart."""
    ims = [to_rgb(i) for i in images]
    w = max(i.shape[1] for i in ims)
    parts: list[np.ndarray] = []
    for i, im in enumerate(ims):
        if i:
            parts.append(np.full((gap, w, 3), BACKGROUND, dtype=np.uint8))
        parts.append(_pad_to(im, im.shape[0], w))
    return np.concatenate(parts, axis=0)


def enlarge(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement (render.images.upscale) of RGB pixels."""
    return upscale(to_rgb(pixels), factor)


def scenes_picture(images: np.ndarray, masks: np.ndarray, instances: np.ndarray, boxes: np.ndarray,
                   labels: np.ndarray, names: Sequence[str], *, scale: int = 3, captions: Sequence[str] = ()) -> np.ndarray:
    """Rows of scenes: the image | its semantic mask | its instance map with the boxes and
    class names, then a legend of the classes (names[0] is the background).

    images (N, H, W, 3) uint8, masks and instances (N, H, W) ints, boxes (N, K, 4) in image
    pixels, labels (N, K) class indices into names[1:] (-1: no object); captions, when
    given, go under each row.
    """
    images, masks, instances = np.asarray(images), np.asarray(masks), np.asarray(instances)
    boxes, labels = np.asarray(boxes), np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {images.shape}")
    n, h, w = images.shape[:3]
    if masks.shape != (n, h, w) or instances.shape != (n, h, w):
        raise ValueError(f"masks {masks.shape} and instances {instances.shape} must be (N, H, W) = {(n, h, w)}")
    if boxes.ndim != 3 or boxes.shape[0] != n or boxes.shape[2] != 4 or labels.shape != boxes.shape[:2]:
        raise ValueError(f"boxes {boxes.shape} must be (N, K, 4) and labels {labels.shape} (N, K)")
    colors = class_colors(len(names))
    inst_colors = np.concatenate([colors[:1], class_colors(32)[[4, 1, 2, 3, 5, 6, 7, 8, 9, 10] * 3]])  # k + 1 -> a colour
    rows = []
    for i in range(n):
        keep = labels[i] >= 0
        image = upscale(images[i], scale)
        semantic = upscale(color_mask(masks[i], colors), scale)
        inst = upscale(color_mask(np.minimum(instances[i], len(inst_colors) - 1), inst_colors), scale)
        inst = draw_boxes(inst, boxes[i][keep], labels[i][keep] + 1, [names[k + 1] for k in labels[i][keep]],
                          colors=colors, scale=scale, width=2)
        row = hstack([titled(image, "image") if i == 0 else image, titled(semantic, "semantic mask") if i == 0 else semantic,
                      titled(inst, "instances and boxes") if i == 0 else inst])
        if i < len(captions):
            strip = np.full((16, row.shape[1], 3), BACKGROUND, dtype=np.uint8)
            row = np.concatenate([row, draw_label(strip, captions[i], (4, 8), anchor="lm", size=10)], axis=0)
        rows.append(row)
    body = vstack(rows, gap=6)
    return vstack([body, legend(list(names), colors, width=body.shape[1])], gap=4)
