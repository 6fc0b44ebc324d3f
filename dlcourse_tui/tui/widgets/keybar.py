"""The footer line: the current screen's main keys, as one widget of text.

Textual's Footer rebuilds a widget per key each time the focus moves or a screen
resumes; while a run trained that rebuild was a good part of the ~80 ms it took to
close the help modal over the dashboard. This bar renders the same keys as one line
and redraws only when they change.
"""

from __future__ import annotations

from rich.text import Text
from textual.screen import Screen
from textual.widget import Widget


class KeyBar(Widget):
    """`key description` for each shown binding of the screen, the command palette's key at the right."""

    COMPONENT_CLASSES = {"keybar--key", "keybar--description"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        width: 1fr;
        background: $footer-background;
        .keybar--key { color: $footer-key-foreground; background: $footer-key-background; text-style: bold; }
        .keybar--description { color: $footer-description-foreground; background: $footer-description-background; }
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.keys: tuple[tuple[str, str], ...] = ()  # (key as shown, description) at the left
        self.palette: tuple[str, str] | None = None  # the command palette's key, at the right

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)
        self.bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: Screen) -> None:
        """Take the screen's active bindings; refresh only if what is shown changed."""
        if screen is not self.screen:
            return
        app = self.app
        keys, seen, palette = [], set(), None
        for _node, binding, enabled, _tooltip in screen.active_bindings.values():
            if not enabled:
                continue
            if binding.action == "command_palette" and app.ENABLE_COMMAND_PALETTE:
                palette = (app.get_key_display(binding), binding.description)
            elif binding.show and binding.action not in seen:
                seen.add(binding.action)
                keys.append((app.get_key_display(binding), binding.description))
        if (tuple(keys), palette) != (self.keys, self.palette):
            self.keys, self.palette = tuple(keys), palette
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        desc_style = self.get_component_rich_style("keybar--description")
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        for key, description in self.keys:
            line.append(f" {key} ", key_style)
            line.append(f"{description} ", desc_style)
        if self.palette is not None:
            key, description = self.palette
            right = Text.assemble((f" {key} ", key_style), (f"{description} ", desc_style))
            gap = self.size.width - line.cell_len - right.cell_len
            if gap > 0:
                line.append(" " * gap)
                line.append_text(right)
        return line
