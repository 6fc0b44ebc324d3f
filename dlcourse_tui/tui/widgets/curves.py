"""A line chart of named series, redrawn only when asked and visible.

Series are kept whole; each draw downsamples them to the chart's width and draws them with
numpy (render/plot.py) straight into Textual strips: about a millisecond at 120x40, where
plotext's pure-Python build took tens (taken from the training thread through the GIL).
The strips are kept until the data, the size or the title change, so a repaint for any
other reason (a modal closing, a scroll) costs nothing but copying them.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from dlcourse_tui.render.plot import ChartRows, ema, plot, style_of  # noqa: F401 - ema: re-exported

__all__ = ["Curves", "ema"]


class Curves(Widget):
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
        self.draws = 0  # how many times the chart was drawn (tests and benchmarks read it)
        self.smoothing = 0.0  # EMA weight; 0 draws the raw series only
        self.version = 0  # bumped on every change of the data
        self.chart: ChartRows | None = None  # the chart last drawn
        self._key = None  # (layout, version, base style) of the strips
        self._strips: list[Strip] = []

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

    def refresh_if_needed(self, *, background: bool = False) -> bool:  # noqa: ARG002 - kept for callers
        """Redraw when there is new data and the chart is on screen; True if it redrew.
        (`background` is accepted for older callers: a draw is cheap enough to do here.)"""
        if not self.dirty or not self.is_mounted or not self.display or self.size.width < 4:
            return False
        if self.screen is not self.app.screen or not self.region:
            return False  # not visible: keep dirty for later
        self.dirty = False
        self._strips_for(self._layout())
        self.refresh()
        return True

    def _layout(self) -> tuple:
        """Everything but the data that the picture depends on."""
        return (self.size.width, self.size.height, self.title, self.xlabel, self.smoothing, self.mono)

    def _strips_for(self, layout: tuple, base: Style | None = None) -> list[Strip]:
        base = self.rich_style if base is None else base
        key = (layout, self.version, base)
        if key != self._key:
            width, height, title, xlabel, smoothing, mono = layout
            chart = plot([(name, xs, ys) for name, (xs, ys) in self.series.items()], width, height,
                         title=title, xlabel=xlabel, mono=mono, smoothing=smoothing)
            styles: dict[int, Style] = {}
            strips = []
            for row in chart.rows:
                segments = []
                for text, sid in row:
                    st = styles.get(sid)
                    if st is None:
                        name = style_of(sid, mono)
                        st = styles[sid] = base + Style.parse(name) if name else base
                    segments.append(Segment(text, st))
                strips.append(Strip(segments, chart.width))
            self.chart, self._strips, self._key = chart, strips, key
            self.draws += 1
        return self._strips

    def render_lines(self, crop: Region) -> list[Strip]:
        # Drawn now only for a new size (or theme), or a first draw. Newer data waits for the
        # owner's timer (refresh_if_needed): the dashboard coming back from the help modal
        # repainted both charts from new data on the key press; it shows the strips it has.
        layout, key, base = self._layout(), self._key, self.rich_style
        if key is None or key[0] != layout or key[2] != base:
            self._strips_for(layout, base)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if 0 <= y < len(self._strips):
            strip = self._strips[y]
            return strip if strip.cell_length == width else strip.crop_extend(0, width, self.rich_style)
        return Strip.blank(width, self.rich_style)

    def text(self) -> Text:
        """The chart last drawn as Rich text (tests, debugging)."""
        if self.chart is None:
            return Text()
        out = Text()
        for i, row in enumerate(self.chart.rows):
            if i:
                out.append("\n")
            for text, sid in row:
                out.append(text, style_of(sid, self.mono) or "")
        return out
