"""The training loop: steps a Task, reads metrics back every few steps, checkpoints,
and tells callbacks what happened. It knows nothing of who listens."""

from __future__ import annotations

import math
import random
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dlcourse_tui.engine.checkpoint import save_checkpoint
from dlcourse_tui.engine.distributed import average, fault_step
from dlcourse_tui.engine.events import (
    Callback, EpochEnded, Evaluated, Event, RunFailed, RunFinished, RunStarted, StepEnded,
)
from dlcourse_tui.tasks.base import Task


PICTURE_INTERVAL_S = 1.0  # pictures at most this often (and after the last epoch): tiny models finish epochs in ms


class Diverged(Exception):
    """The loss stopped being a finite number at `step`; the message is for the learner."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


class Trainer:
    """Runs `task` for config.train.epochs epochs, resumable from a checkpoint state."""

    def __init__(
        self,
        task: Task,
        *,
        run_id: str,
        callbacks: list[Callback],
        checkpoint_path: Path | None = None,
        stop_event: threading.Event | None = None,
        pause_event: threading.Event | None = None,
        resume_state: dict[str, Any] | None = None,
        threads: str = "",
    ) -> None:
        """`resume_state`: a checkpoint whose task part is already loaded into `task`
        (engine.session.restore_task); the trainer restores its own progress from it."""
        self.task = task
        self.cfg = task.config.train
        self.run_id = run_id
        self.threads = threads  # the CPU threads and why, for RunStarted
        self.callbacks = callbacks
        self.checkpoint_path = checkpoint_path
        self.stop_event = stop_event or threading.Event()
        self.pause_event = pause_event or threading.Event()
        self.steps_per_epoch = task.steps_per_epoch()
        # progress: `epoch` epochs are complete, `batch` batches of the current one are done
        self.step = 0
        self.in_step = False  # inside task.train_step: a failure there is "at step self.step + 1"
        self.epoch = 0
        self.batch = 0
        self.elapsed_before = 0.0
        self.pending: list[dict[str, Tensor]] = []  # metrics not yet read back, on the device
        self.pending_n: list[int] = []  # examples in each of those steps: means weigh steps by them
        self.epoch_sums: dict[str, float] = {}  # Σ metric × examples over this epoch's read-backs
        self.epoch_steps = 0
        self.epoch_examples = 0
        self.last_train: dict[str, float] = {}
        self.last_eval: dict[str, float] = {}
        self.resumed = resume_state is not None
        self.dist = task.dist
        self.is_main = self.dist is None or self.dist.is_main
        self.agreed_stop = False  # distributed runs stop only when all ranks agree, at a read-back
        self.fault_at = fault_step(self.dist)
        self.pictures_at = -math.inf  # when pictures were last made
        if resume_state is not None:
            self._restore(resume_state)

    # -- events ------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        for cb in self.callbacks:
            cb(event)

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> RunFinished | RunFailed:
        """Train to the end, or until stop_event; returns the final event (also emitted)."""
        task, cfg = self.task, self.cfg
        self.emit(RunStarted(
            run_id=self.run_id, config=task.config.to_dict(), device=str(task.device), num_params=task.num_params(),
            steps_per_epoch=self.steps_per_epoch, total_steps=self.steps_per_epoch * cfg.epochs,
            start_step=self.step, resumed=self.resumed,
            run_dir=str(self.checkpoint_path.parent) if self.checkpoint_path else "", threads=self.threads,
        ))
        self.t0 = time.perf_counter()
        self.window_t = self.t0
        try:
            if not self.resumed and self.is_main:
                for table in task.tables():
                    self.emit(table)
            while self.epoch < cfg.epochs:
                task.train(True)
                for batch in task.batches(self.epoch, start=self.batch):
                    if self._should_stop():
                        return self._finish("stopped")
                    self.in_step = True
                    if self.fault_at is not None and self.step + 1 == self.fault_at:
                        raise RuntimeError(f"fault injected on rank {self.dist.rank} at step {self.fault_at}")
                    self.pending.append(task.train_step(batch))
                    self.pending_n.append(task.examples_in(batch))
                    self.in_step = False
                    self.step += 1
                    self.batch += 1
                    if self.step % cfg.log_every == 0:
                        self._read_back()
                self._end_epoch()
            return self._finish("completed")
        except Diverged as e:
            return self._fail(str(e), "", step=e.step)
        except Exception as e:  # noqa: BLE001 - any failure ends as RunFailed, never a dead thread
            where = f"step {self.step + 1}" if self.in_step else f"the end of epoch {self.epoch + 1} (after step {self.step})"
            return self._fail(failure_sentence(e, where, cfg.batch_size), traceback.format_exc())

    def _should_stop(self) -> bool:
        if self.dist is not None:
            return self.agreed_stop
        while self.pause_event.is_set() and not self.stop_event.is_set():
            time.sleep(0.05)
        return self.stop_event.is_set()

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t0

    def _read_back(self) -> None:
        """Move the pending metrics to the host in one transfer; emit their means, each step
        weighted by its examples (a short last batch counts for what it holds)."""
        if not self.pending:
            return
        keys = list(self.pending[0])
        stacked = torch.stack([torch.stack([m[k].float() for m in self.pending]) for k in keys])  # (K, n)
        if self.dist is not None:  # mean over ranks, and agree on stopping, in one all-reduce
            stacked, self.agreed_stop = average(stacked, float(self.stop_event.is_set()), self.dist)
        rows = stacked.tolist()
        n, weights = len(self.pending), self.pending_n
        self.pending, self.pending_n = [], []
        first = self.step - n + 1
        loss_row = rows[keys.index("loss")]
        for i, value in enumerate(loss_row):
            if not math.isfinite(value):
                lr = self.cfg.lr
                raise Diverged(
                    f"The training loss became {value} at step {first + i} (epoch {self.epoch + 1}): the updates blew up. "
                    f"Try a lower learning rate, e.g. --set lr={lr / 10:g} (it was {lr:g}).",
                    step=first + i,
                )
        examples = sum(weights)
        sums = {k: sum(v * w for v, w in zip(r, weights)) for k, r in zip(keys, rows)}
        means = {k: total / examples for k, total in sums.items()}
        for k, total in sums.items():
            self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + total
        self.epoch_steps += n
        self.epoch_examples += examples
        now = time.perf_counter()
        rate = examples / max(now - self.window_t, 1e-9)
        self.window_t = now
        self.emit(StepEnded(step=self.step, epoch=self.epoch + 1, metrics=means, samples_per_sec=rate, elapsed=self.elapsed()))

    def _end_epoch(self) -> None:
        self._read_back()
        self.epoch += 1
        self.batch = 0
        self.last_train = {f"train_{k}": v / max(self.epoch_examples, 1) for k, v in self.epoch_sums.items()}
        self.epoch_sums, self.epoch_steps, self.epoch_examples = {}, 0, 0
        self.emit(EpochEnded(epoch=self.epoch, step=self.step, metrics=self.last_train, elapsed=self.elapsed()))
        final = self.epoch == self.cfg.epochs
        if self.epoch % self.cfg.eval_every == 0 or final:
            self.last_eval = self.task.evaluate()
            self.emit(Evaluated(epoch=self.epoch, step=self.step, metrics=self.last_eval))
            if self.is_main and (final or time.perf_counter() - self.pictures_at >= PICTURE_INTERVAL_S):
                self.pictures_at = time.perf_counter()
                for picture in self.task.pictures(self.epoch, final):
                    self.emit(picture)
            self.task.train(True)
            if not final:
                self._checkpoint()

    def _finish(self, status: str) -> RunFinished:
        self._checkpoint()
        event = RunFinished(status=status, step=self.step, epoch=self.epoch,  # type: ignore[arg-type]
                            metrics={**self.last_train, **self.last_eval}, elapsed=self.elapsed())
        self.emit(event)
        return event

    def _fail(self, message: str, tb: str, step: int | None = None) -> RunFailed:
        """Emit RunFailed at `step` (by default the last step taken, or the one that raised)."""
        if step is None:
            step = self.step + 1 if self.in_step else self.step
        event = RunFailed(message=message, step=step, traceback=tb)
        self.emit(event)
        return event

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        keys = list(self.pending[0]) if self.pending else []
        pending = torch.stack([torch.stack([m[k].float() for m in self.pending]) for k in keys]).cpu() if keys else torch.zeros(0)
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available() and self.task.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "task": self.task.state_dict(),
            "trainer": {
                "step": self.step, "epoch": self.epoch, "batch": self.batch, "elapsed": self.elapsed(),
                "epoch_sums": dict(self.epoch_sums), "epoch_steps": self.epoch_steps,
                "epoch_examples": self.epoch_examples,
                "last_train": dict(self.last_train), "last_eval": dict(self.last_eval),
                "pending_keys": keys, "pending": pending, "pending_n": list(self.pending_n),
                "threads": torch.get_num_threads(),
            },
            "rng": rng,
            "config": self.task.config.to_dict(),
        }

    def _checkpoint(self) -> None:
        if self.checkpoint_path is not None:
            save_checkpoint(self.state_dict(), self.checkpoint_path)

    def _restore(self, state: dict[str, Any]) -> None:
        """The trainer's progress and the random streams; the task's own state (models,
        optimisers, schedules) was loaded and checked when the run was prepared."""
        t = state["trainer"]
        self.step, self.epoch, self.batch = t["step"], t["epoch"], t["batch"]
        self.elapsed_before = t["elapsed"]
        self.epoch_sums, self.epoch_steps = dict(t["epoch_sums"]), t["epoch_steps"]
        bs = self.cfg.batch_size  # checkpoints written before means were weighted by examples lack these
        if "epoch_examples" in t:
            self.epoch_examples = t["epoch_examples"]
        else:  # the sums were of step means: make them sums over examples
            self.epoch_examples = self.epoch_steps * bs
            self.epoch_sums = {k: v * bs for k, v in self.epoch_sums.items()}
        self.last_train, self.last_eval = dict(t["last_train"]), dict(t["last_eval"])
        keys, pending = t["pending_keys"], t["pending"].to(self.task.device)  # (K, n)
        self.pending = [{k: pending[i, j] for i, k in enumerate(keys)} for j in range(pending.shape[1])] if keys else []
        self.pending_n = list(t.get("pending_n", [bs] * len(self.pending)))
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])


def failure_sentence(e: BaseException, where: str, batch_size: int) -> str:
    """What a learner reads when training raised `e` at `where` ("step 5", or the end of an epoch)."""
    if isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower():
        return (f"The run ran out of memory at {where} with batch size {batch_size}. "
                f"Try a smaller batch, e.g. --set batch_size={max(1, batch_size // 2)}, or a smaller model.")
    return (f"The run failed at {where}: {type(e).__name__}: {e}. "
            "The full traceback is saved as traceback.txt in the run folder.")
