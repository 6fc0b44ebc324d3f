"""Terminal charts: line charts for the CLI, downsampling, sparklines.

:func:`line_chart` draws with render/plot.py, the chart the app draws too (numpy, about
a millisecond a chart). Every series is first cut to about two points per dot column by
:func:`downsample`, which keeps each bucket's minimum and maximum so spikes survive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["downsample", "line_chart", "sparkline", "SPARK_CHARS"]

SPARK_CHARS = "▁▂▃▄▅▆▇█"


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
    n_inner = n - 2  # first and last are kept separately
    n_buckets = max(1, (max_points - 2) // 2)
    edges = np.linspace(0, n_inner, n_buckets + 1).astype(np.intp)
    starts = edges[:-1][edges[1:] > edges[:-1]]  # n_inner > n_buckets: no bucket is empty
    y_inner = y[1:-1]
    lo_vals = np.where(np.isnan(y_inner), np.inf, y_inner)
    hi_vals = np.where(np.isnan(y_inner), -np.inf, y_inner)
    # each bucket's first minimum and first maximum, without a Python loop over buckets
    bucket = np.repeat(np.arange(starts.shape[0]), np.diff(np.append(starts, n_inner)))
    first_lo = _first_per_bucket(lo_vals == np.minimum.reduceat(lo_vals, starts)[bucket], bucket, starts.shape[0])
    first_hi = _first_per_bucket(hi_vals == np.maximum.reduceat(hi_vals, starts)[bucket], bucket, starts.shape[0])
    inner = np.unique(np.concatenate([first_lo, first_hi]))  # sorted: buckets in order, each min/max in order
    idx = np.concatenate([[0], inner + 1, [n - 1]]).astype(np.intp)
    return x[idx].tolist(), y[idx].tolist()


def _first_per_bucket(hit: np.ndarray, bucket: np.ndarray, n_buckets: int) -> np.ndarray:
    """Index of the first True of `hit` in each bucket (every bucket has one)."""
    where = np.flatnonzero(hit)
    first = np.full(n_buckets, -1, dtype=np.intp)
    first[bucket[where][::-1]] = where[::-1]  # written last to first: the first one stays
    return first


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
    ``width`` columns wide: the app's own chart (render/plot.py), for the headless CLI.

    Each series is downsampled to two points per braille column and non-finite y values
    are skipped. With ``color=False`` the string has no ANSI escapes and each series
    after the first gets its own marker so the legend still tells them apart.
    ``ylabel``, when given, is put before the title (the chart has no vertical label).
    """
    from dlcourse_tui.render.plot import chart_ansi, plot

    if ylabel:
        title = f"{ylabel} · {title}" if title else ylabel
    chart = plot([(str(name), xs, ys) for name, (xs, ys) in series.items()], max(10, int(width)),
                 max(5, int(height)), title=title, xlabel=xlabel, mono=not color)
    return chart_ansi(chart, color=color, mono=not color)


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
