"""Help: every key of the screen below, in a modal."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


def screen_keys(screen) -> list[tuple[str, str]]:
    """(key, what it does) for the bindings active on `screen`, app-wide ones included."""
    shown: list[tuple[str, str]] = []
    rest: list[tuple[str, str]] = []
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        b = active.binding
        if not b.description or b.description in seen:
            continue
        seen.add(b.description)
        (shown if b.show else rest).append((screen.app.get_key_display(b), b.description))
    return shown + rest  # the screen's main keys (those in the footer) first


class HelpScreen(ModalScreen):
    """The keys of the screen the learner came from; any of escape, q or ? closes it."""

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
        with Vertical(id="help-box"):
            yield Static(f"Keys: {self.help_title}", id="help-title")
            yield DataTable(id="help-table", cursor_type="row", show_cursor=False)
            yield Static("escape closes · arrows move · tab changes focus", id="help-foot")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "action")
        for key, what in self.keys:
            table.add_row(key, what)
        table.focus()

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss()
