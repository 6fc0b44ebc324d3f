"""The Textual app of dlc. Importing this package is cheap: no Textual, no torch."""

from __future__ import annotations

import os
import sys
from typing import Any

# Textual paints at most this many frames a second (read once, when Textual is imported).
# At its default of 60 a key waited up to two 17 ms frame ticks before the screen showed
# it: opening help over a training dashboard took 40 ms at the median, 22 ms at 120.
# Frames are still drawn only when something changed.
os.environ.setdefault("TEXTUAL_FPS", "120")


def run_app() -> None:
    """Open the app (the lesson browser) and block until the learner quits."""
    from dlcourse_tui.tui.app import DLCApp

    app = DLCApp()
    app.run()
    leave(app)
    if app.return_code:  # the app ended on an error (Textual printed it): say so to the shell
        sys.exit(app.return_code)


def leave(app: Any) -> None:
    """End the process now if a run's thread is still busy after the app closed.

    Quitting stops every run and waits for its checkpoint (bridge.supervise); only a run
    still preparing its data (which cannot be interrupted, and has written nothing yet)
    can be left. Letting the interpreter shut down under a thread inside torch aborts it
    ("terminate called without an active exception"), so exit without the shutdown.
    """
    if any(h.thread is not None and h.thread.is_alive() for h in getattr(app, "runs", [])):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(app.return_code or 0)
