"""Line charts drawn with numpy: braille dots, axes, ticks and a legend, as rows of styled runs.

One chart implementation for the app (the Curves widget turns the rows into Textual strips)
and the headless CLI (`dlc runs show`, `dlc run --grid`: :func:`chart_ansi`). A chart of two
series at 120x40 takes about a millisecond, where plotext's pure-Python build took tens: the
dots are set with array operations, and each row becomes a few (text, style) runs.

Layout, as plotext drew it::

                      loss                      title, centred over the plot
       ┌──────────────────────────────────────┐
  0.614┤ ⢕⢕ train      ⠣⡀                      │  y ticks: evenly spaced values from the
       │ ⢕⢕ val          ⠈⠢⣀                   │  minimum (bottom row) to the maximum (top)
  0.084┤                     ⠉⠒⠤⣀⣀⣀⣀⣀⣀⣀⣀      │  legend: in the emptiest corner
       └┬────────────┬───────────┬────────────┬┘
       10           137         263         390   x ticks: whole numbers for whole-number xs
                      step                         x label

Each cell holds 2×4 braille dots. Where curves meet in a cell the one drawn later shows
(raw before smoothed, series in order). Without colour (``mono``) the first series is
drawn in braille and the others with their own marker character, one per cell, so
series stay apart; a smoothed chart's raw curve is drawn with "·".

Non-finite values are skipped: a NaN or inf point breaks the line (a gap, visible when the
downsampled series keeps it), and never stretches the axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dlcourse_tui.render.chart import downsample

__all__ = ["ChartRows", "plot", "ema", "chart_ansi", "COLORS", "RAW_COLOR", "MONO_MARKERS", "RAW_MARKER"]

BRAILLE = 0x2800
# bit of each dot in a braille cell, indexed [row 0-3][column 0-1]
_DOT_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint32)
LEGEND_BRAILLE = "⢕⢕"
SINGLE_POINT = "•"  # a series of one point: a dot you can see

COLORS = ("#00d7ff", "#ffaf00", "#ff5fff", "#5fd75f", "#5f87ff", "#ff5f5f", "#e4e4e4", "#00afaf")
RAW_COLOR = "#6c6c6c"  # the raw curve under a smoothed one: drawn, but faint
MONO_MARKERS = ("braille", "x", "+", "o", "*", "#", "%", "@")
RAW_MARKER = "·"

# style ids of the cells
PLAIN, TITLE, RAW = 0, 1, 2
SERIES = 3  # series i has style id SERIES + i


def ema(ys: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with TensorBoard's debiasing: s_t = w s_(t-1) + (1-w) y_t, / (1 - w^t).

    Non-finite values pass through and leave the average alone."""
    out, last, n = [], 0.0, 0
    for y in ys:
        y = float(y)
        if not math.isfinite(y):
            out.append(y)
            continue
        n += 1
        last = weight * last + (1 - weight) * y
        out.append(last / (1 - weight ** n))
    return out


@dataclass
class ChartRows:
    """A drawn chart: ``rows[i]`` is line i as runs of (text, style id); every line is
    ``width`` cells. ``styles`` maps the ids to what they mean (see :func:`style_of`)."""

    width: int
    height: int
    rows: list[list[tuple[str, int]]]
    curves: list[tuple[str | None, int, str]] = field(default_factory=list)  # (label, style id, marker) drawn

    def lines(self) -> list[str]:
        """The chart as plain text lines."""
        return ["".join(text for text, _ in row) for row in self.rows]

    def plain(self) -> str:
        return "\n".join(self.lines())


def style_of(style_id: int, mono: bool) -> str | None:
    """A Rich style string for a style id (None: the surrounding text's style)."""
    if style_id == TITLE:
        return "bold"
    if mono or style_id == PLAIN:
        return None
    if style_id == RAW:
        return RAW_COLOR
    return COLORS[(style_id - SERIES) % len(COLORS)]


def _clean(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    return np.where(np.isfinite(a), a, np.nan)


def _fmt_ticks(values: np.ndarray, spacing: float) -> list[str]:
    """Labels with one shared number of decimals, enough to tell neighbours apart."""
    finite = values[np.isfinite(values)]
    big = float(np.max(np.abs(finite))) if finite.size else 0.0
    if big >= 1e6 or (0 < big < 1e-3):
        return [f"{v:.3g}" for v in values]
    decimals = 0 if spacing <= 0 else max(0, min(6, math.ceil(-math.log10(spacing)) + 1))
    out = []
    for v in values:
        s = f"{v:.{decimals}f}"
        if s.lstrip("-").strip("0.") == "":  # -0.000 -> 0.000
            s = s.lstrip("-")
        out.append(s)
    return out


def _tick_rows(rows: int, most: int = 7) -> np.ndarray:
    """Rows of the y ticks, top and bottom included: evenly spaced when a whole number of
    rows apart fits (at most `most` ticks), else at least two rows apart."""
    span = rows - 1
    if span <= 0:
        return np.array([0], dtype=np.int64)
    step = next(k for k in range(1, span + 1) if span % k == 0 and span // k + 1 <= most)
    if span // step + 1 >= min(4, span + 1):
        return np.arange(0, rows, step, dtype=np.int64)
    n = max(2, min(most, span // 2 + 1))
    return np.unique(np.rint(np.linspace(0, span, n)).astype(np.int64))


def _line_points(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer grid points on the straight segments between consecutive finite points
    (a non-finite point breaks the line), plus every finite point itself."""
    ok = np.isfinite(px) & np.isfinite(py)
    xs, ys = [np.rint(px[ok]).astype(np.int64)], [np.rint(py[ok]).astype(np.int64)]
    if px.shape[0] > 1:
        seg = ok[:-1] & ok[1:]
        if seg.any():
            ax, ay = px[:-1][seg], py[:-1][seg]
            dx, dy = px[1:][seg] - ax, py[1:][seg] - ay
            steps = np.maximum(np.ceil(np.maximum(np.abs(dx), np.abs(dy))).astype(np.int64), 1)
            idx = np.repeat(np.arange(steps.shape[0]), steps + 1)
            starts = np.cumsum(steps + 1) - (steps + 1)
            t = (np.arange(idx.shape[0]) - starts[idx]) / steps[idx]
            xs.append(np.rint(ax[idx] + dx[idx] * t).astype(np.int64))
            ys.append(np.rint(ay[idx] + dy[idx] * t).astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _put(grid: np.ndarray, row: int, col: int, text: str) -> int:
    """Write `text` into a code grid at (row, col), clipped to the grid; returns cells written."""
    if row < 0 or row >= grid.shape[0] or col >= grid.shape[1] or not text:
        return 0
    if col < 0:
        text, col = text[-col:], 0
    text = text[: grid.shape[1] - col]
    if text:
        grid[row, col:col + len(text)] = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return len(text)


def plot(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    width: int,
    height: int,
    *,
    title: str = "",
    xlabel: str = "step",
    mono: bool = False,
    smoothing: float = 0.0,
) -> ChartRows:
    """Draw named (xs, ys) series as a line chart of ``width`` × ``height`` cells.

    Each series is downsampled to two points per braille column (spikes kept: see
    :func:`~dlcourse_tui.render.chart.downsample`). With ``smoothing`` > 0 each series of
    more than two points is drawn as its EMA over its raw curve (faint, unlabelled).
    X ticks are whole numbers when every x is one (steps, epochs)."""
    width, height = max(8, int(width)), max(3, int(height))
    # -- vertical layout: title, frame, plot rows, frame, x tick labels, x label
    show_title, show_xlabel, show_xticks = bool(title), bool(xlabel), True
    plot_h = height - 3 - show_title - show_xlabel
    if plot_h < 2 and show_xlabel:
        show_xlabel, plot_h = False, plot_h + 1
    if plot_h < 2 and show_title:
        show_title, plot_h = False, plot_h + 1
    if plot_h < 1:
        show_xticks, plot_h = False, plot_h + 1
    plot_h = max(1, plot_h)

    # -- the curves to draw, in order (raw faint curves first, each below its smoothed one)
    n_cols_guess = max(2, width - 8)
    curves: list[tuple[str | None, int, str, np.ndarray, np.ndarray]] = []  # label, style, marker, x, y
    for i, (name, xs, ys) in enumerate(series):
        x, y = _clean(xs), _clean(ys)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"series {name!r}: {x.shape[0]} xs but {y.shape[0]} ys")
        keep = np.isfinite(x)
        x, y = x[keep], y[keep]
        if not np.isfinite(y).any():
            continue
        marker = MONO_MARKERS[i % len(MONO_MARKERS)] if mono else "braille"
        if smoothing > 0 and np.isfinite(y).sum() > 2:
            rx, ry = downsample(x, y, 4 * n_cols_guess)
            curves.append((None, RAW, RAW_MARKER if mono else "braille", np.asarray(rx, float), np.asarray(ry, float)))
            y = np.asarray(ema(y.tolist(), smoothing))
        dx, dy = downsample(x, y, 4 * n_cols_guess)
        curves.append((str(name), SERIES + i, marker, np.asarray(dx, float), np.asarray(dy, float)))

    curves.sort(key=lambda c: c[1] != RAW)  # every faint raw curve below every labelled one (stable)

    # -- data ranges
    all_x = np.concatenate([c[3] for c in curves]) if curves else np.array([])
    all_y = np.concatenate([c[4] for c in curves]) if curves else np.array([])
    fy = all_y[np.isfinite(all_y)]
    if fy.size:
        y_lo, y_hi = float(fy.min()), float(fy.max())
    else:
        y_lo, y_hi = 0.0, 1.0
    if y_hi <= y_lo:
        pad = abs(y_lo) * 0.1 or 0.5
        y_lo, y_hi = y_lo - pad, y_hi + pad
    whole_x = bool(all_x.size) and bool(np.all(np.mod(all_x, 1.0) == 0))
    if all_x.size:
        x_lo, x_hi = float(all_x.min()), float(all_x.max())
    else:
        x_lo, x_hi = 0.0, 1.0
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5

    # -- y ticks and the left margin
    tick_rows = _tick_rows(plot_h)
    tick_vals = y_hi - tick_rows / max(plot_h - 1, 1) * (y_hi - y_lo) if plot_h > 1 else np.array([(y_hi + y_lo) / 2])
    y_labels = _fmt_ticks(tick_vals, (y_hi - y_lo) / max(len(tick_rows) - 1, 1))
    label_w = max(len(s) for s in y_labels)
    if width - label_w - 2 < 4:  # too narrow for labels: the plot only
        y_labels, label_w = ["" for _ in y_labels], 0
    left = label_w + 1  # first plot column
    plot_w = width - label_w - 2

    # -- the plot area: braille bits or marker characters per cell, last curve wins a cell
    codes = np.full((plot_h, plot_w), 0x20, dtype=np.uint32)
    style = np.zeros((plot_h, plot_w), dtype=np.int64)
    sx_dots = (2 * plot_w - 1) / (x_hi - x_lo)
    sy_dots = (4 * plot_h - 1) / (y_hi - y_lo)
    drawn: list[tuple[str | None, int, str]] = []
    for label, sid, marker, x, y in curves:
        single = int(np.isfinite(y).sum()) == 1
        if marker == "braille" and not single:
            px, py = _line_points((x - x_lo) * sx_dots, (y_hi - y) * sy_dots)
            inside = (px >= 0) & (px < 2 * plot_w) & (py >= 0) & (py < 4 * plot_h)
            px, py = px[inside], py[inside]
            bits = np.zeros((plot_h, plot_w), dtype=np.uint32)
            np.bitwise_or.at(bits, (py // 4, px // 2), _DOT_BITS[py % 4, px % 2])
            hit = bits > 0
            codes[hit] = BRAILLE + bits[hit]
        else:
            char = SINGLE_POINT if (single and marker == "braille") else marker
            cx = (x - x_lo) * ((plot_w - 1) / (x_hi - x_lo))
            cy = (y_hi - y) * ((plot_h - 1) / (y_hi - y_lo))
            px, py = _line_points(cx, cy)
            inside = (px >= 0) & (px < plot_w) & (py >= 0) & (py < plot_h)
            hit = np.zeros((plot_h, plot_w), dtype=bool)
            hit[py[inside], px[inside]] = True
            codes[hit] = ord(char)
        style[hit] = sid
        drawn.append((label, sid, marker))

    # -- legend: one line per labelled curve, in the corner where it hides the fewest dots
    entries = [(lab, sid, mk) for lab, sid, mk in drawn if lab is not None]
    if entries and plot_w >= 6:
        texts = [(LEGEND_BRAILLE if mk == "braille" else mk * 2, " " + lab) for lab, _sid, mk in entries]
        box_w = min(plot_w, 2 + max(len(a) + len(b) for a, b in texts))
        box_h = min(plot_h, len(texts))
        corners = [(0, 0), (0, plot_w - box_w), (plot_h - box_h, 0), (plot_h - box_h, plot_w - box_w)]
        busy = [int((codes[r:r + box_h, c:c + box_w] != 0x20).sum()) for r, c in corners]
        r0, c0 = corners[int(np.argmin(busy))]  # ties: top left first, as plotext had it
        for k, ((mark, name), (_lab, sid, _mk)) in enumerate(zip(texts, entries)):
            if k >= box_h:
                break
            codes[r0 + k, c0:c0 + box_w] = 0x20
            style[r0 + k, c0:c0 + box_w] = PLAIN
            n = _put(codes, r0 + k, c0 + 1, mark)
            style[r0 + k, c0 + 1:c0 + 1 + n] = sid
            _put(codes, r0 + k, c0 + 1 + n, name)

    # -- the whole chart: a code grid and a style grid, then runs per row
    grid = np.full((height, width), 0x20, dtype=np.uint32)
    sgrid = np.zeros((height, width), dtype=np.int64)
    row = 0
    if show_title:
        t = title[:plot_w] if len(title) > plot_w else title
        col = left + max(0, (plot_w - len(t)) // 2)
        n = _put(grid, row, col, t)
        sgrid[row, col:col + n] = TITLE
        row += 1
    _put(grid, row, left - 1, "┌" + "─" * plot_w + "┐")
    row += 1
    top = row
    for r in range(plot_h):
        _put(grid, top + r, left - 1, "│")
        _put(grid, top + r, left + plot_w, "│")
    for r, lab in zip(tick_rows.tolist(), y_labels):
        _put(grid, top + r, 0, lab.rjust(label_w))
        _put(grid, top + r, left - 1, "┤")
    grid[top:top + plot_h, left:left + plot_w] = codes
    sgrid[top:top + plot_h, left:left + plot_w] = style
    row = top + plot_h
    # x ticks
    n_xt = max(2, min(5, plot_w // 10))
    if whole_x and all_x.size and float(all_x.max()) > float(all_x.min()):
        lo, hi = float(all_x.min()), float(all_x.max())
        ticks = np.unique(np.rint(np.linspace(lo, hi, n_xt))).astype(np.int64)
        x_labels = [str(t) for t in ticks.tolist()]
        ticks = ticks.astype(np.float64)
    elif whole_x and all_x.size:
        ticks = np.array([float(all_x.min())])
        x_labels = [str(int(ticks[0]))]
    else:
        ticks = np.linspace(x_lo, x_hi, n_xt)
        x_labels = _fmt_ticks(ticks, (x_hi - x_lo) / (n_xt - 1))
    tick_cols = np.rint((ticks - x_lo) / (x_hi - x_lo) * (plot_w - 1)).astype(np.int64)
    bottom = "└" + "".join("┬" if c in set(tick_cols.tolist()) else "─" for c in range(plot_w)) + "┘"
    _put(grid, row, left - 1, bottom)
    row += 1
    if show_xticks and row < height:
        end = -1  # last column written (labels never touch)
        for c, lab in zip(tick_cols.tolist(), x_labels):
            start = min(max(0, left + c - (len(lab) - 1) // 2), width - len(lab))
            if start > end + 1 or end < 0:
                _put(grid, row, start, lab)
                end = start + len(lab) - 1
        row += 1
    if show_xlabel and row < height:
        t = xlabel[:plot_w]
        _put(grid, row, left + max(0, (plot_w - len(t)) // 2), t)

    rows: list[list[tuple[str, int]]] = []
    for r in range(height):
        line = grid[r].tobytes().decode("utf-32-le")
        s = sgrid[r]
        cuts = np.flatnonzero(s[1:] != s[:-1]) + 1
        bounds = [0, *cuts.tolist(), width]
        rows.append([(line[a:b], int(s[a])) for a, b in zip(bounds[:-1], bounds[1:])])
    return ChartRows(width=width, height=height, rows=rows, curves=drawn)


def chart_ansi(chart: ChartRows, *, color: bool = True, mono: bool = False) -> str:
    """The chart as one string of lines; with ``color``, series colours as ANSI escapes."""
    if not color:
        return chart.plain()
    from rich.color import ColorSystem
    from rich.style import Style

    cache: dict[int, Style | None] = {}
    out = []
    for row in chart.rows:
        parts = []
        for text, sid in row:
            if sid not in cache:
                name = style_of(sid, mono)
                cache[sid] = Style.parse(name) if name else None
            st = cache[sid]
            parts.append(st.render(text, color_system=ColorSystem.TRUECOLOR) if st is not None else text)
        out.append("".join(parts))
    return "\n".join(out)
