"""The latest picture of a run, drawn with half blocks from ready-made pixels."""

from __future__ import annotations

import textwrap
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from dlcourse_tui.render.halfblock import halfblock_lines

_DIM = Style(dim=True)


class Picture(Widget):
    """Shows (H, W, 3) uint8 pixels fitted into the widget, caption below; ASCII ramp without colour.

    The widget's size comes from the stylesheet, not from the picture: a run that
    alternates pictures of different shapes repaints only this widget, with no re-layout
    of the screen (11 in an 8 s CNN run when it grew to fit) and no log jumping below it.
    The picture is turned into strips once (numpy runs to segments, no Rich Text on the
    way) and centred as a block, so a repaint for any other reason costs nothing."""

    DEFAULT_CSS = """
    Picture { height: 1fr; width: 1fr; }
    """

    def __init__(self, *, color: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = Text("no picture yet")  # what is shown, as plain text (tests read it)
        self.color = color
        self.pixels = None
        self.caption = ""
        self._drawn_size = (0, 0)
        self._lines: list[list[Segment]] = []  # picture lines, then the caption line
        self._block = 0  # width of the picture and caption block, centred in the widget
        self._strips: tuple | None = None  # ((size, base style), strips)

    def show(self, pixels, caption: str = "") -> None:
        self.pixels = pixels
        self.caption = caption
        self._redraw()

    def on_resize(self) -> None:
        if self.pixels is not None and tuple(self.size) != self._drawn_size:
            self._redraw()

    def _redraw(self) -> None:
        self._drawn_size = tuple(self.size)
        width = self.size.width or 32
        caption = textwrap.wrap(self.caption, max(width, 8), max_lines=2, placeholder="…") if self.caption else []
        lines = max(2, (self.size.height or 10) - len(caption))
        h, w = self.pixels.shape[:2]
        # fit both ways: lines = ceil(h' / 2) with h' = h * width / w
        fit = max(4, min(width, int(2 * lines * w / max(h, 1))))
        segments = halfblock_lines(self.pixels, fit, color=self.color, grow=True)
        block = max((sum(len(s.text) for s in line) for line in segments), default=0)
        for line in caption:
            segments.append([Segment(line, _DIM)])
            block = max(block, len(line))
        self._lines, self._block = segments, min(block, max(width, 1))
        self.text = Text("\n".join("".join(s.text for s in line) for line in segments))
        self._strips = None
        self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        base = self.rich_style
        key = (tuple(self.size), base)
        if self._strips is None or self._strips[0] != key:
            width = self.size.width
            if self.pixels is None:
                msg = "no picture yet"[:width]
                lines, block = [[Segment(msg)]], len(msg)
            else:
                lines, block = self._lines, self._block
            left = max(0, (width - block) // 2)  # content-align: center top
            pad = [Segment(" " * left)] if left else []
            strips = [Strip(pad + line).apply_style(base).crop_extend(0, width, base) for line in lines]
            self._strips = (key, strips)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        strips = self._strips[1] if self._strips is not None else []
        if 0 <= y < len(strips):
            return strips[y]
        return Strip.blank(self.size.width, self.rich_style)
