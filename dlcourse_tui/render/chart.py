"""Terminal charts: plotext line charts, downsampling, sparklines.

plotext is imported inside :func:`line_chart` only, so importing this module is
cheap. Rendering a plotext chart costs milliseconds per thousand points, which is
why every series is first cut to about two points per column by :func:`downsample`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["downsample", "line_chart", "sparkline", "SPARK_CHARS"]

SPARK_CHARS = "▁▂▃▄▅▆▇█"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Distinct markers so series stay apart when there is no colour.
_MONO_MARKERS = ("braille", "x", "+", "o", "*", "#", "%", "@")


def downsample(
    xs: Sequence[float], ys: Sequence[float], max_points: int
) -> tuple[list[float], list[float]]:
    """Cut a series to at most ``max_points`` points, keeping its shape.

    The points are split into equal buckets and each bucket keeps its minimum and
    its maximum (in their original order), so spikes survive; the first and the
    last point are always kept. NaN values never win a bucket (all-NaN buckets
    keep one NaN point). Returns plain lists; short series come back unchanged.
    """
    x = np.asarray(xs)
    y = np.asarray(ys, dtype=np.float64)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"xs has {x.shape[0]} points but ys has {y.shape[0]}")
    n = y.shape[0]
    max_points = max(2, int(max_points))
    if n <= max_points:
        return x.tolist(), y.tolist()
    inner = np.arange(1, n - 1)  # first and last are kept separately
    n_buckets = max(1, (max_points - 2) // 2)
    edges = np.linspace(0, inner.shape[0], n_buckets + 1).astype(np.intp)
    y_inner = y[1:-1]
    lo_vals = np.where(np.isnan(y_inner), np.inf, y_inner)
    hi_vals = np.where(np.isnan(y_inner), -np.inf, y_inner)
    keep = [0]
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        if b <= a:
            continue
        i_lo = a + int(np.argmin(lo_vals[a:b]))
        i_hi = a + int(np.argmax(hi_vals[a:b]))
        keep.extend(sorted({i_lo + 1, i_hi + 1}))
    keep.append(n - 1)
    idx = np.array(keep, dtype=np.intp)
    return x[idx].tolist(), y[idx].tolist()


def _new_figure():  # noqa: ANN202 - plotext's figure class has no public type
    """A fresh plotext figure, private to this call (no shared global state)."""
    try:
        from plotext._figure import _figure_class

        return _figure_class()
    except ImportError:  # pragma: no cover - a plotext without the private class
        import plotext as plt

        plt.clear_figure()
        return plt


def line_chart(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    width: int = 60,
    height: int = 15,
    title: str = "",
    xlabel: str = "step",
    ylabel: str = "",
    color: bool = True,
) -> str:
    """A line chart of named (xs, ys) series as a string of ``height`` lines
    ``width`` columns wide (plotext's build, nothing printed).

    Each series is downsampled to ``2 * width`` points and non-finite y values are
    dropped. With ``color=False`` the string has no ANSI escapes and each series
    gets its own marker so the legend still tells them apart.
    """
    fig = _new_figure()
    fig.plotsize(max(10, int(width)), max(5, int(height)))
    fig.theme("pro" if color else "clear")
    if title:
        fig.title(title)
    if xlabel:
        fig.xlabel(xlabel)
    if ylabel:
        fig.ylabel(ylabel)
    x_lo, x_hi, all_int = math.inf, -math.inf, True
    for i, (name, (xs, ys)) in enumerate(series.items()):
        x = np.asarray(xs, dtype=np.float64)
        y = np.asarray(ys, dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
            continue
        dx, dy = downsample(x[ok], y[ok], 2 * max(1, int(width)))
        marker = "braille" if color else _MONO_MARKERS[i % len(_MONO_MARKERS)]
        fig.plot(dx, dy, label=str(name), marker=marker)
        x_lo, x_hi = min(x_lo, min(dx)), max(x_hi, max(dx))
        all_int = all_int and bool(np.all(np.mod(x[ok], 1.0) == 0))
    if all_int and x_hi > x_lo:  # steps and epochs: whole-number ticks, not 1249.8
        ticks = np.unique(np.rint(np.linspace(x_lo, x_hi, 5))).astype(np.int64).tolist()
        fig.xticks(ticks, [str(t) for t in ticks])
    out = fig.build()
    if hasattr(fig, "clear_figure"):
        fig.clear_figure()
    if not color:
        out = _ANSI.sub("", out)
    return out


def sparkline(values: Sequence[float], width: int = 30) -> str:
    """A one-line sparkline of ``values`` with ▁▂▃▄▅▆▇█, at most ``width`` characters
    (longer input is averaged into ``width`` buckets). NaN and inf become spaces;
    a constant series is a flat line of ▄."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or width <= 0:
        return ""
    v = np.where(np.isfinite(v), v, np.nan)
    if v.size > width:
        edges = np.linspace(0, v.size, int(width) + 1).astype(np.intp)
        buckets = []
        for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
            chunk = v[a:b]
            chunk = chunk[~np.isnan(chunk)]
            buckets.append(float(chunk.mean()) if chunk.size else math.nan)
        v = np.array(buckets)
    finite = ~np.isnan(v)
    if not finite.any():
        return " " * v.size
    lo, hi = float(v[finite].min()), float(v[finite].max())
    top = len(SPARK_CHARS) - 1
    if hi > lo:
        idx = np.rint((np.where(finite, v, lo) - lo) / (hi - lo) * top).astype(np.intp)
    else:
        idx = np.full(v.size, 3, dtype=np.intp)
    return "".join(SPARK_CHARS[i] if ok else " " for i, ok in zip(idx.tolist(), finite.tolist()))
