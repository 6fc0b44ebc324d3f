"""A line chart of named series (textual-plotext), redrawn only when asked and visible.

Series are kept whole; each draw downsamples them to the chart's width. Plotext renders
in tens of milliseconds, so the owner calls `refresh_if_needed` from a slow timer, and a
live chart plots new data on a thread worker.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.worker import Worker, WorkerState
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

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
        self._cache = None  # ((layout, version), rendered plot)
        self._building = False  # a background build is on its way
        self._bg_plot: Plot | None = None  # the background builds' own plotext figure

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

    def refresh_if_needed(self, *, background: bool = False) -> bool:
        """Redraw when there is new data and the chart is on screen; True if it redrew (or
        started to). With `background`, new data is plotted on a thread worker and shown
        when ready, so the event loop stays free for keys meanwhile (a build takes tens of
        ms, longer while a run holds the GIL); a new size or theme is still drawn at once."""
        if not self.dirty or not self.is_mounted or not self.display or self.size.width < 4:
            return False
        if self.screen is not self.app.screen or not self.region:
            return False  # not visible: keep dirty for later
        if background and self._cache is not None and self._cache[0][0] == self._layout():
            if self._building:
                return False  # still dirty: the next call plots the newest data
            self.dirty = False
            self._building = True
            layout, version, series = self._layout(), self.version, self._snapshot()
            if self._bg_plot is None:
                self._bg_plot = Plot()
            self.run_worker(lambda: ((layout, version), self._plot_text(self._bg_plot, layout, series)),
                            thread=True, group=f"curves-{id(self)}", exit_on_error=False)
            return True
        self.dirty = False
        self.refresh()
        return True

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != f"curves-{id(self)}" or event.state not in (
                WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        event.stop()
        self._building = False
        if event.state is WorkerState.SUCCESS:
            key, text = event.worker.result
            if key[0] == self._layout():
                self._cache = (key, text)
                self.refresh()
                return
        self.dirty = True  # failed or out of date: plot again on the next call

    def render(self):  # noqa: ANN201 - RenderResult
        """The cached plot while data, size and title are unchanged (Textual re-renders a
        widget for other reasons too, and a build costs tens of ms) or while a background
        build of newer data is on its way; else plot now."""
        layout = self._layout()
        if self._cache is not None:
            (c_layout, c_version), text = self._cache
            if c_layout == layout and (c_version == self.version or self._building):
                return text
        text = self._plot_text(self.plt, layout, self._snapshot())
        self._cache = ((layout, self.version), text)
        return text

    def _layout(self) -> tuple:
        """Everything but the data that the picture depends on."""
        return (self.size.width, self.size.height, self.title, self.xlabel, self.smoothing, self.mono,
                self._get_plotext_theme_name(self.app.theme))

    def _snapshot(self) -> list[tuple[str, list[float], list[float]]]:
        return [(name, list(xs), list(ys)) for name, (xs, ys) in self.series.items()]

    def _plot_text(self, plt: Plot, layout: tuple, series: list[tuple[str, list[float], list[float]]]) -> Text:
        """The chart as text; reads only its arguments, so it may run on a worker thread."""
        width, height, title, xlabel, smoothing, mono, theme = layout
        plt.clear_data()
        plt.clear_figure()
        plt.plotsize(width, height)
        plt._set_size(width, height)  # as PlotextPlot.render does: plotsize alone does not always take  # noqa: SLF001
        plt.theme(theme)
        if title:
            plt.title(title)
        plt.xlabel(xlabel)
        width = max(10, width)
        any_data = False
        for i, (name, xs, ys) in enumerate(series):
            pts = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
            if not pts:
                continue
            px, py = [p[0] for p in pts], [p[1] for p in pts]
            marker = _MONO_MARKERS[i % len(_MONO_MARKERS)] if mono else "braille"
            color = None if mono else _COLORS[i % len(_COLORS)]
            if smoothing > 0 and len(pts) > 2:
                rx, ry = downsample(px, py, 2 * width)
                plt.plot(rx, ry, marker="·" if mono else "braille", color=None if mono else RAW_COLOR)
                py = ema(py, smoothing)
            dx, dy = downsample(px, py, 2 * width)
            if len(dx) == 1:
                plt.scatter(dx, dy, label=name, marker=marker if mono else "dot", color=color)
            else:
                plt.plot(dx, dy, label=name, marker=marker, color=color)
            any_data = True
        self.draws += 1
        xs_all = [x for _, xs, _ in series for x in xs if math.isfinite(x)]
        if xs_all and all(float(x).is_integer() for x in xs_all):
            lo, hi = min(xs_all), max(xs_all)
            if hi > lo:  # steps and epochs: whole-number ticks
                n = max(2, min(5, width // 10))
                ticks = sorted({round(lo + (hi - lo) * i / (n - 1)) for i in range(n)})
                plt.xticks(ticks, [str(t) for t in ticks])
        if not any_data:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
        return Text.from_ansi(plt.build())
