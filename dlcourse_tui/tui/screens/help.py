"""Help: every key of the screen below, in a modal."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def screen_keys(screen) -> list[tuple[str, str]]:
    """(key, what it does) for the screen's own bindings and the app-wide ones; a focused
    widget's own keys (a table's cursor, a tree's arrows) are not the screen's to explain."""
    shown: list[tuple[str, str]] = []
    rest: list[tuple[str, str]] = []
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        if active.node is not screen and active.node is not screen.app:
            continue
        b = active.binding
        if not b.description or b.description in seen:
            continue
        seen.add(b.description)
        (shown if b.show else rest).append((screen.app.get_key_display(b), b.description))
    return shown + rest  # the screen's main keys (those in the footer) first


class HelpScreen(ModalScreen):
    """The keys of the screen the learner came from; any of escape, q or ? closes it."""

    walk_name = "help"

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str]], title: str) -> None:
        super().__init__()
        self.keys = keys
        self.help_title = title

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
        table.add_column("key", no_wrap=True, min_width=10)
        table.add_column("action")
        for key, what in self.keys:
            table.add_row(key, what)
        with Vertical(id="help-box"):
            yield Static(f"Keys: {self.help_title}", id="help-title", markup=False)
            with VerticalScroll(id="help-keys"):  # one static table: cheap to show over a live dashboard
                yield Static(table)
            yield Static("escape closes · arrows scroll", id="help-foot")

    def on_mount(self) -> None:
        self.query_one("#help-keys").focus()

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss()
