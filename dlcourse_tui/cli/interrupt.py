"""Ctrl+C in a headless run: the first press asks the trainer to stop after this step
(it saves a checkpoint); a second one gives up at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dlcourse_tui.cli.console import err


@contextmanager
def stop_on_ctrl_c(stop: threading.Event, message: str) -> Iterator[None]:
    """Within the block, SIGINT sets `stop` (and prints `message`) instead of raising."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def on_sigint(signum, frame) -> None:
        if stop.is_set():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        stop.set()
        err.print(f"\n{message}")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
