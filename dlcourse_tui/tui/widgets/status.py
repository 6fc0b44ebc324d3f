"""A fixed-size line of text that changes often (a run's status, several times a second).

A Static re-lays-out the whole screen on every update; the dashboard's status line did
that at 4 Hz while a run trained (55 layouts in an 8 s run), each one taking the GIL from
the trainer. This widget only repaints itself: its size comes from the stylesheet.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class StatusText(Widget):
    """Shows one Rich Text; `show` repaints it only when the text changed."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = Text()

    def show(self, text: Text) -> None:
        if text != self.text:  # Text compares plain text and spans
            self.text = text
            self.refresh()

    def render(self) -> Text:
        return self.text
