"""Pixels to terminal cells with the upper half block "▀".

Each cell shows two pixels stacked vertically: the foreground colour paints the
top pixel and the background colour the bottom one. Terminal cells are about
twice as tall as wide, so two pixels per cell keep the picture's aspect ratio.
Without colour (``NO_COLOR``, a dumb terminal) pictures fall back to a density
ramp of ASCII characters, one character per two vertical pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from rich.color import Color, ColorTriplet, ColorType
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.text import Span, Text

from .images import to_rgb, upscale

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

__all__ = ["halfblock", "halfblock_lines", "HalfBlockImage", "fit_width", "UPPER_HALF", "ASCII_RAMP"]

UPPER_HALF = "▀"
# Dark to bright: on a dark terminal a bright pixel gets a dense character.
ASCII_RAMP = " .:-=+*#%@"

_STYLE_CACHE: dict[int, Style] = {}
_COLOR_CACHE: dict[int, Color] = {}
_CACHE_MAX = 65536
_make_triplet = ColorTriplet._make
_make_color = Color._make
_NO_BOTTOM = 0  # key part for "no bottom pixel" (the padding row of an odd height)


def _ensure_styles(keys: list[int]) -> dict[int, Style]:
    """Make sure every packed cell key has a cached Style; returns the style cache.

    A key packs the top pixel's 0xRRGGBB in bits 25.. and the bottom pixel's
    0xRRGGBB + 1 in bits 0..24 (0: no bottom pixel). Colours and styles are built
    in bulk with namedtuple ``_make`` and ``Style.from_color``, which skip the
    argument handling of ``Color(...)``/``Style(...)`` (about 3x faster).
    """
    global _STYLE_CACHE, _COLOR_CACHE
    styles = _STYLE_CACHE
    missing = [k for k in set(keys) if k not in styles]
    if not missing:
        return styles
    if len(styles) + len(missing) > _CACHE_MAX:
        # Fresh dicts rather than clear(): a render in another thread keeps its own.
        _STYLE_CACHE, _COLOR_CACHE = {}, {}
        styles = _STYLE_CACHE
    colors = _COLOR_CACHE
    wanted = {k >> 25 for k in missing} | {(k & 0x1FFFFFF) - 1 for k in missing}
    wanted.discard(-1)
    truecolor, make_color, make_triplet = ColorType.TRUECOLOR, _make_color, _make_triplet
    colors.update(
        (c, make_color((f"#{c:06x}", truecolor, None, make_triplet((c >> 16, (c >> 8) & 255, c & 255)))))
        for c in wanted
        if c not in colors
    )
    from_color = Style.from_color
    styles.update(
        (k, from_color(colors[k >> 25], colors.get((k & 0x1FFFFFF) - 1))) for k in missing
    )
    return styles


def _box_edges(n_in: int, n_out: int) -> np.ndarray:
    """Start index of each of n_out boxes covering range(n_in) (n_out ≤ n_in)."""
    return (np.arange(n_out) * n_in // n_out).astype(np.intp)


def fit_width(pixels: np.ndarray, width: int | None, *, grow: bool = False) -> np.ndarray:
    """Resize (H, W, 3) pixels so they are at most ``width`` pixels wide, keeping
    the aspect ratio: box averaging when shrinking; with ``grow``, an integer
    nearest-neighbour enlargement towards ``width`` (crisp pixels)."""
    h, w = pixels.shape[:2]
    if width is None or w == 0 or h == 0:
        return pixels
    width = max(1, int(width))
    if width < w:
        new_w = width
        new_h = max(1, round(h * new_w / w))
        cols, rows = _box_edges(w, new_w), _box_edges(h, new_h)
        col_counts = np.diff(np.append(cols, w))
        row_counts = np.diff(np.append(rows, h))
        acc = np.add.reduceat(pixels.astype(np.uint32), cols, axis=1)
        acc = np.add.reduceat(acc, rows, axis=0)
        div = (row_counts[:, None] * col_counts[None, :])[:, :, None]
        return ((acc + div // 2) // div).astype(np.uint8)
    if grow and width >= 2 * w:
        return upscale(pixels, width // w)
    return pixels


def _ascii(rgb: np.ndarray, ramp: str) -> Text:
    lum = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    h = lum.shape[0]
    if h % 2:
        lum = np.concatenate([lum, lum[-1:]], axis=0)  # pad: repeat the last row
    pair = (lum[0::2] + lum[1::2]) * 0.5
    idx = np.minimum((pair * (len(ramp) / 256.0)).astype(np.intp), len(ramp) - 1)
    chars = np.array(list(ramp))[idx]
    return Text("\n".join("".join(row) for row in chars.tolist()), no_wrap=True, overflow="crop")


def halfblock(
    pixels: np.ndarray,
    width: int | None = None,
    *,
    color: bool = True,
    grow: bool = False,
    ramp: str = ASCII_RAMP,
) -> Text:
    """Render (H, W[, C]) uint8 pixels as Rich text, two vertical pixels per cell.

    The result has ceil(H'/2) lines of W' cells, where (H', W') is the picture
    after fitting it to ``width`` cells (see :func:`fit_width`). With
    ``color=True`` each cell is "▀" with fg = top pixel and bg = bottom pixel
    (truecolor styles; the padding row of an odd height leaves bg unset). With
    ``color=False`` each cell is a character of ``ramp`` for the mean brightness
    of its two pixels, and the text carries no styles.
    """
    rgb = fit_width(to_rgb(pixels), width, grow=grow)
    h, w = rgb.shape[:2]
    if h == 0 or w == 0:
        return Text("")
    if not color:
        return _ascii(rgb, ramp)

    n_lines, starts, ends, run_keys = _runs(rgb)
    # Cell index → text offset: each earlier line adds one "\n".
    t_starts = (starts + starts // w).tolist()
    t_ends = (ends + (ends - 1) // w).tolist()
    keys = run_keys.tolist()
    styles = _ensure_styles(keys)
    make_span = Span._make
    spans = [make_span((s, e, styles[k])) for s, e, k in zip(t_starts, t_ends, keys)]
    plain = "\n".join([UPPER_HALF * w] * n_lines)
    return Text(plain, no_wrap=True, overflow="crop", spans=spans)


def _runs(rgb: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(lines, run starts, run ends, run keys): runs of equal cells of (H, W, 3) pixels in
    cell indices (line * W + column), broken at every line start; a key packs the cell's
    top and bottom pixel (see _ensure_styles)."""
    h, w = rgb.shape[:2]
    packed = (
        (rgb[:, :, 0].astype(np.int64) << 16) | (rgb[:, :, 1].astype(np.int64) << 8) | rgb[:, :, 2]
    )
    top = packed[0::2]
    bottom = packed[1::2] + 1
    if h % 2:
        bottom = np.concatenate([bottom, np.full((1, w), _NO_BOTTOM, dtype=np.int64)], axis=0)
    keys = ((top << 25) | bottom).ravel()  # (lines * w,)
    brk = np.empty(keys.shape[0], dtype=bool)
    brk[0] = True
    np.not_equal(keys[1:], keys[:-1], out=brk[1:])
    brk[::w] = True
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], keys.shape[0])
    return top.shape[0], starts, ends, keys[starts]


def halfblock_lines(
    pixels: np.ndarray,
    width: int | None = None,
    *,
    color: bool = True,
    grow: bool = False,
    ramp: str = ASCII_RAMP,
) -> list[list[Segment]]:
    """The picture of :func:`halfblock` as one list of Rich segments per line (a run of
    equal cells is one segment), ready to become Textual strips without going through
    Text: a widget can keep them and repaint at no cost."""
    rgb = fit_width(to_rgb(pixels), width, grow=grow)
    h, w = rgb.shape[:2]
    if h == 0 or w == 0:
        return []
    if not color:
        return [[Segment(line)] for line in _ascii(rgb, ramp).plain.split("\n")]
    n_lines, starts, ends, run_keys = _runs(rgb)
    keys = run_keys.tolist()
    styles = _ensure_styles(keys)
    lengths = (ends - starts).tolist()
    line_of = (starts // w).tolist()
    lines: list[list[Segment]] = [[] for _ in range(n_lines)]
    for line, n, k in zip(line_of, lengths, keys):
        lines[line].append(Segment(UPPER_HALF * n, styles[k]))
    return lines


class HalfBlockImage:
    """A Rich renderable picture: fits the console width and falls back to an
    ASCII ramp when the console has no colour (``NO_COLOR``, ``color_system=None``).

    ``width`` caps the picture's width in cells (default: its pixel width);
    with ``grow=True`` small pictures are enlarged towards ``width``.
    """

    def __init__(
        self,
        pixels: np.ndarray,
        width: int | None = None,
        *,
        grow: bool = False,
        color: bool = True,
    ) -> None:
        self.pixels = to_rgb(pixels)
        self.width = width
        self.grow = grow
        self.color = color

    def _natural_width(self) -> int:
        w = self.pixels.shape[1]
        if self.width is None:
            return w
        if self.grow and self.width >= 2 * w:
            return (self.width // w) * w
        return min(w, self.width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        target = min(self._natural_width(), max(1, options.max_width))
        color = self.color and not console.no_color and console.color_system is not None
        yield halfblock(self.pixels, target, color=color, grow=self.grow)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        natural = self._natural_width()
        return Measurement(min(natural, 8), natural)
