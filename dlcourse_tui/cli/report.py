"""Headless output of a run (a Trainer callback): a Rich progress bar with ETA and
throughput on a terminal; plain periodic lines, no control characters, otherwise.

Text lines are never folded at the console's width: one record stays one line in a log
(a terminal wraps long lines itself)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dlcourse_tui.engine.events import (
    EpochEnded, Evaluated, Event, PictureReady, RunFailed, RunFinished, RunStarted, StepEnded, TableReady,
)
from dlcourse_tui.render.text import fmt_metrics, table_of


class HeadlessReport:
    """Prints a run's progress to `console`; `live` picks the progress bar over plain lines."""

    PLAIN_EVERY = 10.0  # seconds between plain step lines

    def __init__(self, console: Console, *, live: bool | None = None) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.progress: Progress | None = None
        self.task_id = None
        self.epochs = 0
        self.last_plain = 0.0
        self.epoch_train: dict[str, float] = {}  # the last epoch's training metrics, shown with its evaluation
        self.gone = False  # the console stopped taking output (its terminal closed: SIGHUP)

    def line(self, text: str) -> None:
        """One record, one line: no folding at the console's width, no markup."""
        self.console.print(text, soft_wrap=True, markup=False, highlight=False)

    def __call__(self, event: Event) -> None:
        """Show `event`; once the console's terminal is gone, nothing more (the run goes on)."""
        if self.gone:
            return
        try:
            self._show(event)
        except OSError:  # EIO after the terminal closed: a report must never fail the run
            self.gone = True
            self.close()

    def _show(self, event: Event) -> None:
        c = self.console
        if isinstance(event, RunStarted):
            cfg = event.config
            self.epochs = cfg["train"]["epochs"]
            verb = f"resuming at step {event.start_step}" if event.resumed else "starting"
            self.line(f"run {event.run_id}: {verb}")
            self.line(f"  {cfg['model']['name']} ({event.num_params:,} parameters) on {cfg['data']['name']}, "
                    f"{self.epochs} epoch{'s' * (self.epochs != 1)} × {event.steps_per_epoch} steps, batch {cfg['train']['batch_size']}, device {event.device}")
            if event.threads:
                self.line(f"  CPU threads {event.threads}")
            self.line(f"  folder {event.run_dir}")
            if self.live:
                self.progress = Progress(
                    TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[metrics]}"), TimeRemainingColumn(),
                    console=c, refresh_per_second=4, transient=True,
                )
                self.progress.start()
                self.task_id = self.progress.add_task("train", total=event.total_steps, completed=event.start_step,
                                                      epoch=1, epochs=self.epochs, rate="", metrics="")
            self.last_plain = time.monotonic()
        elif isinstance(event, StepEnded):
            rate = f"{event.samples_per_sec:,.0f} ex/s"
            if self.progress is not None:
                self.progress.update(self.task_id, completed=event.step, epoch=event.epoch, rate=rate,
                                     metrics=fmt_metrics(event.metrics))
            elif time.monotonic() - self.last_plain >= self.PLAIN_EVERY:
                self.last_plain = time.monotonic()
                self.line(f"step {event.step}  epoch {event.epoch}/{self.epochs}  {fmt_metrics(event.metrics)}  {rate}")
        elif isinstance(event, EpochEnded):
            self.epoch_train = event.metrics
        elif isinstance(event, Evaluated):
            self.line(f"epoch {event.epoch}/{self.epochs}  {fmt_metrics({**self.epoch_train, **event.metrics})}")
            self.last_plain = time.monotonic()
        elif isinstance(event, PictureReady):
            pass  # saved by the run store; listed at the end
        elif isinstance(event, TableReady):
            c.print(table_of(event.title, event.columns, event.rows))
        elif isinstance(event, (RunFinished, RunFailed)):
            self.close()

    def close(self) -> None:
        if self.progress is not None:
            progress, self.progress = self.progress, None
            try:
                progress.stop()
            except OSError:
                self.gone = True
