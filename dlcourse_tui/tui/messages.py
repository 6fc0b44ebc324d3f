"""Messages between the training worker and the UI: frozen dataclasses with one-line docstrings.

Step metrics never travel as messages (they go through the bridge's buffer, read on a
timer); every other engine event arrives as one RunEvent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from dlcourse_tui.engine.events import Event
    from dlcourse_tui.tui.bridge import RunHandle


@dataclass
class RunEvent(Message):
    """An engine event other than StepEnded (or a failure before the run began) for run `handle`."""

    handle: "RunHandle"
    event: "Event"


@dataclass
class ParamCounts(Message):
    """Parameter counts of models, counted on a worker thread: name -> count (or None)."""

    counts: dict[str, Any]
