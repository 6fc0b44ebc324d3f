"""Ctrl+C, SIGTERM and SIGHUP in a headless run: the first one asks the trainer to stop
after this step (it saves a checkpoint); a second one gives up at once.

SIGTERM is what SLURM, CI runners and `kill` send, SIGHUP what a closed SSH session
sends: both are handled like Ctrl+C, so no work is lost. The process then exits with
128 + the signal's number, as a shell reports a process the signal ended: 130 for
Ctrl+C, 143 for SIGTERM, 129 for SIGHUP.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dlcourse_tui.cli.console import err

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_STOPPED = 130  # the exit code of a run stopped by Ctrl+C; by SIGTERM 143, by SIGHUP 129


@dataclass
class StopRequest:
    """Which signal asked the run to stop (None: none did)."""

    signum: int | None = None

    @property
    def exit_code(self) -> int:
        """128 + the signal's number; 130 when a stop came some other way."""
        return 128 + self.signum if self.signum is not None else EXIT_STOPPED

    @property
    def name(self) -> str:
        if self.signum is None or self.signum == signal.SIGINT:
            return "Ctrl+C"
        return signal.Signals(self.signum).name


def say(message: str) -> None:
    """Print to stderr; after SIGHUP the terminal may be gone, and that must not stop the stop."""
    try:
        err.print(message, soft_wrap=True)
    except (OSError, ValueError):
        pass


@contextmanager
def stop_on_signals(stop: threading.Event, message: str | None) -> Iterator[StopRequest]:
    """Within the block, SIGINT, SIGTERM and SIGHUP set `stop` (and print `message`, if any)
    instead of ending the process; the StopRequest yielded records the first signal."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield request
        return

    def on_signal(signum, frame) -> None:
        if stop.is_set():  # the second signal: give up now
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.raise_signal(signum)
            return
        request.signum = signum
        stop.set()
        if message:
            say(f"\n{request.name}: {message}")

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
