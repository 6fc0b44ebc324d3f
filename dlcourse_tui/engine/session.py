"""One run from config to final event: validate and build everything first, then create
(or reopen) the run folder, then train. Both front ends start runs through here."""

from __future__ import annotations

import copy
import os
import random
import threading
from pathlib import Path
from dataclasses import dataclass, replace
from typing import Any

import torch

from dlcourse_tui.data import load_dataset
from dlcourse_tui.engine.checkpoint import CheckpointError, load_checkpoint
from dlcourse_tui.engine.config import RunConfig
from dlcourse_tui.engine.devices import resolve_device
from dlcourse_tui.engine.events import Callback, RunFailed, RunFinished
from dlcourse_tui.engine.distributed import broadcast_text, close_process_group, distributed_device, init_process_group
from dlcourse_tui.engine.launch import context_from_env
from dlcourse_tui.engine.optim import restart_schedule
from dlcourse_tui.engine.runs import RankFailureRecorder, RunRecord, RunStore, runs_root
from dlcourse_tui.engine.threads import CORES, ThreadChoice, measure_threads
from dlcourse_tui.engine.trainer import Trainer
from dlcourse_tui.engine.upstream import load_upstream
from dlcourse_tui.errors import UserError
from dlcourse_tui.models.registry import get_entry
from dlcourse_tui.tasks import get_task_class
from dlcourse_tui.tasks.base import Task


@dataclass
class PreparedRun:
    """A run whose data, model and (when resuming) state are ready; no folder written yet."""

    config: RunConfig
    task: Task
    resume_state: dict[str, Any] | None = None
    resume_record: RunRecord | None = None
    threads: ThreadChoice | None = None  # the CPU threads it trains with, and why


def prepare_run(config: RunConfig, *, resume: RunRecord | None = None,
                epochs: int | None = None, store_root: Path | None = None) -> PreparedRun:
    """Everything that can fail on bad input fails here, before a run folder exists (or,
    when resuming, before anything in it changes)."""
    state = None
    if resume is not None:
        state = load_checkpoint(resume.checkpoint)
        check_checkpoint_layout(state, resume)
        if epochs is not None:
            config = replace(config, train=replace(config.train, epochs=epochs))
        done = state["trainer"]["epoch"]
        if config.train.epochs <= done and state["trainer"]["batch"] == 0:
            raise UserError(f"run {resume.id} already finished its {done} epochs; "
                            f"give more to continue, e.g. --epochs {done + 5}.")
    dist = context_from_env()
    if resume is None and (dist is None or dist.is_main):  # rank 0 alone writes the run
        check_store_writable(store_root or runs_root())
    device = resolve_device(config.train.device)
    if dist is not None:
        check_distributable(config, dist.world_size)
        device = distributed_device(dist, device)
        init_process_group(dist, device)
    entry = get_entry(config.model)
    if entry.task != config.task:
        raise UserError(f"model {config.model} is for {entry.task}, but lesson {config.lesson} trains {config.task} models.")
    torch.manual_seed(config.train.seed)
    torch.set_num_threads(config.train.threads or 1)  # generating data gains little from more threads
    data = load_dataset(config.data, seed=config.train.seed, args=config.data_args, lesson=config.lesson)
    if data.kind not in entry.inputs:
        raise UserError(f"model {config.model} takes {' or '.join(entry.inputs)} data, but {config.data} is {data.kind} data; "
                        "pick another --model or --data.")
    task = get_task_class(config.task)(config, data.to(device), device, dist)
    task.upstream = load_upstream(config)
    task.build()
    if state is not None:
        restore_task(task, state, resume, RunConfig.from_dict(state["config"]).train.epochs)
    threads = choose_threads(task, state)
    torch.set_num_threads(threads.threads)
    return PreparedRun(config, task, state, resume, threads)


THREADS_ENV = "DLC_THREADS"  # fixes every run's CPU threads, as train.threads does one run's


def choose_threads(task: Task, state: dict[str, Any] | None) -> ThreadChoice:
    """The CPU threads `task` trains with: as set (train.threads, then $DLC_THREADS), as the
    run being resumed had them (float
    sums can depend on the split, and a resumed run must repeat its numbers), or the
    faster of 1 and all cores over a few timed training steps, undone afterwards."""
    requested = task.config.train.threads
    if task.device.type != "cpu":
        return ThreadChoice(CORES, f"{CORES} (the model runs on {task.device})")
    if requested:
        return ThreadChoice(requested, f"{requested} (set by train.threads)")
    fixed = os.environ.get(THREADS_ENV, "").strip()
    if fixed:
        if not fixed.isdigit() or int(fixed) < 1:
            raise UserError(f"{THREADS_ENV}={fixed!r}: give a number of CPU threads, e.g. {THREADS_ENV}=2 (or unset it).")
        return ThreadChoice(int(fixed), f"{fixed} (set by {THREADS_ENV})")
    saved = (state or {}).get("trainer", {}).get("threads")
    if saved:
        return ThreadChoice(int(saved), f"{saved} (as the run had before it stopped)")
    if task.dist is not None:  # the processes of this machine share its cores
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", task.dist.world_size)))
        n = max(1, CORES // local)
        return ThreadChoice(n, f"{n} ({CORES} cores shared by {local} processes)")
    return measure_threads_of(task)


def measure_threads_of(task: Task) -> ThreadChoice:
    """measure_threads on `task`'s own first training batch, leaving no trace: the task's
    state and the random streams are put back as they were."""
    snapshot = copy.deepcopy(task.state_dict())
    rng, py_rng = torch.get_rng_state(), random.getstate()
    batch = next(iter(task.batches(0)))
    task.train(True)
    try:
        return measure_threads(lambda: task.train_step(batch))
    except Exception:  # noqa: BLE001 - the step fails again in training, where it is reported with its step
        return ThreadChoice(1, "1 (timing the first steps failed)")
    finally:
        task.load_state_dict(snapshot)
        torch.set_rng_state(rng)
        random.setstate(py_rng)


TRAINER_KEYS = ("step", "epoch", "batch", "elapsed", "epoch_sums", "epoch_steps", "last_train", "last_eval",
                "pending_keys", "pending")


def check_checkpoint_layout(state: dict[str, Any], record: RunRecord) -> None:
    """CheckpointError unless `state` has the parts a resumed run reads (dlc's own layout)."""
    trainer = state.get("trainer")
    missing = [k for k in ("task", "trainer", "rng", "config") if k not in state]
    if not missing and isinstance(trainer, dict):
        missing = [f"trainer.{k}" for k in TRAINER_KEYS if k not in trainer]
    if missing or not isinstance(state["task"], dict) or not isinstance(state["config"], dict):
        what = f"it lacks {', '.join(missing)}" if missing else "its parts are not tables"
        raise CheckpointError(f"{record.checkpoint} is not the checkpoint of a dlc run ({what}); "
                              f"run {record.id} cannot be resumed. Start a new run instead.")


def restore_task(task: Task, state: dict[str, Any], record: RunRecord, saved_epochs: int) -> None:
    """Load the checkpoint's model, optimiser and schedule state into the prepared `task`, or
    CheckpointError when it does not fit it (another model's weights, other shapes).

    Given more epochs than it was started with, a finished run whose learning rate followed a
    schedule (one-cycle, cosine) starts a new schedule over the added epochs; one stopped
    part-way through its schedule must finish that first.
    """
    try:
        task.load_state_dict(state["task"])
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as e:
        lines = [line.strip() for line in str(e).strip().splitlines()] or [type(e).__name__]
        first = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]
        first = first.rstrip(":.")
        if isinstance(e, KeyError):
            first = f"it has no entry {first}"
        raise CheckpointError(f"{record.checkpoint} does not fit run {record.id} ({record.config.get('model', {}).get('name', '?')} "
                              f"on {record.config.get('data', {}).get('name', '?')}): {first[:240]}. "
                              "It cannot be resumed; start a new run instead.") from None
    epochs = task.config.train.epochs
    if epochs == saved_epochs or not task.schedulers:
        return
    t = state["trainer"]
    if t["epoch"] < saved_epochs or t["batch"]:
        raise UserError(f"run {record.id} stopped at epoch {t['epoch'] + (t['batch'] > 0)} of the {saved_epochs} its "
                        f"{task.config.train.schedule} learning-rate schedule spans; resume it without --epochs to finish "
                        f"that schedule, then give it more epochs (or start a new run with --epochs {epochs}).")
    added = (epochs - saved_epochs) * task.steps_per_epoch()
    for scheduler in task.schedulers.values():
        restart_schedule(scheduler, added)


def check_store_writable(root: Path) -> None:
    """UserError unless run folders can be made under `root` (checked before any data is made)."""
    home = root.parent
    for path in (home, root):
        if path.exists() and not path.is_dir():
            raise UserError(f"{path} is a file, but dlc keeps its runs in a folder there: "
                            f"move the file away, or point DLC_HOME at another folder.")
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write runs to {root}: {existing} is not writable by this user; "
                        "point DLC_HOME at a folder you can write, e.g. DLC_HOME=~/dlc.")


def execute(
    prepared: PreparedRun,
    callbacks: list[Callback],
    *,
    stop_event: threading.Event | None = None,
    pause_event: threading.Event | None = None,
    store_root=None,
) -> tuple[RunStore, RunFinished | RunFailed]:
    """Create or reopen the run folder, then train with the store and `callbacks` listening."""
    cfg = prepared.config.to_dict()
    dist = prepared.task.dist
    store: RunStore | None = None
    if dist is None or dist.is_main:
        if prepared.resume_record is not None:
            store = RunStore.reopen(prepared.resume_record, prepared.resume_state["trainer"]["step"], cfg)
        else:
            store = RunStore.create(cfg, store_root)
        listeners: list[Callback] = [store, *callbacks]
        if dist is not None:  # ahead of the store: rank 0's failure is recorded with its rank
            listeners.insert(0, RankFailureRecorder(store.path, dist.rank))
        checkpoint = store.record.checkpoint
    if dist is not None:  # rank 0 alone writes the run; the others only record their failure
        run_dir = Path(broadcast_text(str(store.path) if store else "", dist))
        if store is None:
            store = RunStore(RunRecord(run_dir.name, run_dir))
            listeners, checkpoint = [RankFailureRecorder(run_dir, dist.rank)], None
    trainer = Trainer(prepared.task, run_id=store.id, callbacks=listeners,
                      checkpoint_path=checkpoint, stop_event=stop_event, pause_event=pause_event,
                      resume_state=prepared.resume_state,
                      threads=prepared.threads.reason if prepared.threads else "")
    try:
        final = trainer.run()
    finally:
        store.close()
    if dist is not None and isinstance(final, RunFinished):  # every rank got here together
        close_process_group()
    return store, final


def check_distributable(config: RunConfig, world_size: int) -> None:
    """UserError unless the run can be split over `world_size` processes."""
    task_cls = get_task_class(config.task)
    if not task_cls.supports_distributed:
        raise UserError(f"lesson {config.lesson} ({config.task}) does not run in several processes yet; "
                        "drop --nproc-per-node (or use 1).")
    if config.train.batch_size % world_size:
        raise UserError(f"batch_size {config.train.batch_size} does not split evenly over {world_size} processes; "
                        f"use a multiple of {world_size}, e.g. --set batch_size={config.train.batch_size // world_size * world_size or world_size}.")
