"""The latest picture of a run, drawn with half blocks from ready-made pixels."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from dlcourse_tui.render.halfblock import halfblock


class Picture(Widget):
    """Shows (H, W, 3) uint8 pixels fitted into the widget, caption below; ASCII ramp without colour.

    The widget's size comes from the stylesheet, not from the picture: a run that
    alternates pictures of different shapes repaints only this widget, with no re-layout
    of the screen (11 in an 8 s CNN run when it grew to fit) and no log jumping below it."""

    DEFAULT_CSS = """
    Picture { height: 1fr; width: 1fr; }
    """

    def __init__(self, *, color: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = Text("no picture yet")
        self.color = color
        self.pixels = None
        self.caption = ""
        self._drawn_size = (0, 0)

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
        lines = max(2, (self.size.height or 10) - (1 if self.caption else 0))
        h, w = self.pixels.shape[:2]
        # fit both ways: lines = ceil(h' / 2) with h' = h * width / w
        width = max(4, min(width, int(2 * lines * w / max(h, 1))))
        text = halfblock(self.pixels, width, color=self.color, grow=True)
        if self.caption:
            text = Text.assemble(text, "\n", Text(self.caption, style="dim", overflow="ellipsis", no_wrap=True))
        self.text = text
        self.refresh()

    def render(self) -> Text:
        return self.text
