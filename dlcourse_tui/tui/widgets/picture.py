"""The latest picture of a run, drawn with half blocks from ready-made pixels."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from dlcourse_tui.render.halfblock import halfblock


class Picture(Static):
    """Shows (H, W, 3) uint8 pixels fitted to the widget's width; ASCII ramp without colour."""

    DEFAULT_CSS = """
    Picture { height: auto; width: 1fr; }
    """

    def __init__(self, *, color: bool = True, **kwargs: Any) -> None:
        super().__init__("no picture yet", **kwargs)
        self.color = color
        self.pixels = None
        self.caption = ""
        self._drawn_width = 0

    def show(self, pixels, caption: str = "") -> None:
        self.pixels = pixels
        self.caption = caption
        self._redraw()

    def on_resize(self) -> None:
        if self.pixels is not None and self.size.width != self._drawn_width:
            self._redraw()

    def _redraw(self) -> None:
        width = self.size.width or 32
        # leave room below for the log: at most half the column, and never under 4 lines
        max_lines = max(4, (self.parent.size.height if self.parent else 16) // 2 + 1)
        h, w = self.pixels.shape[:2]
        # fit both ways: lines = ceil(h' / 2) with h' = h * width / w
        width = max(4, min(width, int(2 * max_lines * w / max(h, 1))))
        self._drawn_width = self.size.width
        text = halfblock(self.pixels, width, color=self.color, grow=True)
        if self.caption:
            text = Text.assemble(text, "\n", Text(self.caption, style="dim", overflow="ellipsis", no_wrap=True))
        self.update(text)
