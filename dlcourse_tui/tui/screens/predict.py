"""The walkthrough's modals. Predict before you run: one of the lesson's questions for the
run about to start; its answer is kept (hidden) and marked when the run ends, escape skips
it. And a yes/no confirmation (resetting a walkthrough)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static

if TYPE_CHECKING:
    from dlcourse_tui.course.blocks import Question


class PredictScreen(ModalScreen[Any]):
    """Ask `question`; dismisses with the answer (a choice, or a number as text), or None."""

    BINDINGS = [Binding("escape", "skip", "Skip")]
    DEFAULT_CSS = """
    PredictScreen { align: center middle; background: $background 60%; }
    #predict-box { width: 64; max-width: 100%; height: auto; border: round $primary; background: $surface; padding: 0 1; }
    #predict-title { text-style: bold; }
    #predict-choices { height: auto; max-height: 8; }
    #predict-foot { color: $text-muted; }
    """

    def __init__(self, question: "Question", number: int = 1, total: int = 1) -> None:
        super().__init__()
        self.question = question
        self.number, self.total = number, total

    def compose(self) -> ComposeResult:
        q = self.question
        with Vertical(id="predict-box"):
            yield Static(f"Predict ({self.number}/{self.total}) before this run", id="predict-title", markup=False)
            yield Static(q.ask, id="predict-ask", markup=False)
            if q.choices:
                yield OptionList(*q.choices, id="predict-choices")
            else:
                yield Input(placeholder="a number, then enter", id="predict-number")
            yield Static("enter answers · escape skips · marked when the run ends", id="predict-foot", markup=False)

    def on_mount(self) -> None:
        self.query_one("#predict-choices" if self.question.choices else "#predict-number").focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.question.choices[event.option_index])

    @on(Input.Submitted)
    def _number(self, event: Input.Submitted) -> None:
        try:
            float(event.value)
        except ValueError:
            self.query_one("#predict-foot", Static).update("a number, e.g. 0.5 · escape skips")
            return
        self.dismiss(event.value.strip())

    def action_skip(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question (y or enter: yes; n or escape: no)."""

    BINDINGS = [Binding("y,enter", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; background: $background 60%; }
    #confirm-box { width: 60; max-width: 100%; height: auto; border: round $warning; background: $surface; padding: 0 1; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, markup=False)
            yield Static("y yes · n no", classes="muted", markup=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
