"""A line chart of named series (textual-plotext), redrawn only when asked and visible.

Series are kept whole; each draw downsamples them to the chart's width. Plotext renders
in tens of milliseconds, so the owner calls `refresh_if_needed` from a slow timer.
"""

from __future__ import annotations

import math

from textual_plotext import PlotextPlot

from dlcourse_tui.render.chart import downsample

_MONO_MARKERS = ("braille", "x", "+", "o", "*", "#", "%", "@")
_COLORS = ("cyan+", "orange+", "magenta+", "green+", "blue+", "red+", "white", "cyan")
RAW_COLOR = "gray"  # the raw curve under a smoothed one: drawn, but faint


def ema(ys: list[float], weight: float) -> list[float]:
    """Exponential moving average with TensorBoard's debiasing: s_t = w s_(t-1) + (1-w) y_t, / (1 - w^t)."""
    out, last, n = [], 0.0, 0
    for y in ys:
        if not math.isfinite(y):
            out.append(y)
            continue
        n += 1
        last = weight * last + (1 - weight) * y
        out.append(last / (1 - weight ** n))
    return out


class Curves(PlotextPlot):
    """Named (xs, ys) series on one chart with a title; `dirty` until drawn."""

    DEFAULT_CSS = """
    Curves { height: 1fr; width: 1fr; min-height: 5; }
    """

    def __init__(self, title: str = "", *, xlabel: str = "step", mono: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.xlabel = xlabel
        self.mono = mono
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self.dirty = True
        self.draws = 0  # how many times the chart was built (tests and benchmarks read it)
        self.smoothing = 0.0  # EMA weight; 0 draws the raw series only
        self.version = 0  # bumped on every change of the data
        self._cache = None  # (key, rendered plot)

    def on_mount(self) -> None:
        super().on_mount()
        if self.mono:
            self.theme = "clear"

    def set_series(self, name: str, xs: list[float], ys: list[float]) -> None:
        self.series[name] = (list(xs), list(ys))
        self.version += 1
        self.dirty = True

    def extend(self, name: str, xs: list[float], ys: list[float]) -> None:
        if not xs:
            return
        old = self.series.setdefault(name, ([], []))
        old[0].extend(xs)
        old[1].extend(ys)
        self.version += 1
        self.dirty = True

    def set_smoothing(self, weight: float) -> None:
        """Draw each series smoothed by an EMA of `weight` over its raw curve (faint); 0: raw only."""
        self.smoothing = weight
        self.dirty = True

    def clear_series(self) -> None:
        self.series.clear()
        self.version += 1
        self.dirty = True

    @property
    def points(self) -> int:
        return sum(len(xs) for xs, _ in self.series.values())

    def refresh_if_needed(self) -> bool:
        """Redraw when there is new data and the chart is on screen; True if it redrew."""
        if not self.dirty or not self.is_mounted or not self.display or self.size.width < 4:
            return False
        if self.screen is not self.app.screen or not self.region:
            return False  # not visible: keep dirty for later
        self.dirty = False
        self.refresh()
        return True

    def render(self):  # noqa: ANN201 - RenderResult
        """Build the plot only when data, size or title changed: Textual re-renders a widget
        for other reasons too (a screen resumed, a modal over it), and a build costs tens of ms."""
        key = (self.size.width, self.size.height, self.version, self.title, self.xlabel, self.smoothing, self.app.theme)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        self._build()
        out = super().render()
        self._cache = (key, out)
        return out

    def _build(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if self.title:
            plt.title(self.title)
        plt.xlabel(self.xlabel)
        width = max(10, self.size.width)
        any_data = False
        for i, (name, (xs, ys)) in enumerate(self.series.items()):
            pts = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
            if not pts:
                continue
            px, py = [p[0] for p in pts], [p[1] for p in pts]
            marker = _MONO_MARKERS[i % len(_MONO_MARKERS)] if self.mono else "braille"
            color = None if self.mono else _COLORS[i % len(_COLORS)]
            if self.smoothing > 0 and len(pts) > 2:
                rx, ry = downsample(px, py, 2 * width)
                plt.plot(rx, ry, marker="·" if self.mono else "braille", color=None if self.mono else RAW_COLOR)
                py = ema(py, self.smoothing)
            dx, dy = downsample(px, py, 2 * width)
            if len(dx) == 1:
                plt.scatter(dx, dy, label=name, marker=marker if self.mono else "dot", color=color)
            else:
                plt.plot(dx, dy, label=name, marker=marker, color=color)
            any_data = True
        self.draws += 1
        xs_all = [x for xs, _ in self.series.values() for x in xs if math.isfinite(x)]
        if xs_all and all(float(x).is_integer() for x in xs_all):
            lo, hi = min(xs_all), max(xs_all)
            if hi > lo:  # steps and epochs: whole-number ticks
                n = max(2, min(5, width // 10))
                ticks = sorted({round(lo + (hi - lo) * i / (n - 1)) for i in range(n)})
                plt.xticks(ticks, [str(t) for t in ticks])
        if not any_data:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
