"""`dlc run LESSON`: one experiment headless, with progress, a final table and exit codes
0 (done), 1 (the run failed), 2 (bad input), 128 + the signal when Ctrl+C, SIGTERM or SIGHUP
stopped it after a step with a checkpoint saved (130, 143, 129; cli/interrupt.py)."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape

from dlcourse_tui.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console


def register(app: typer.Typer) -> None:
    app.command("run", no_args_is_help=True)(run_cmd)


def run_cmd(
    lesson: str = typer.Argument(..., help="Lesson id, slug or unique prefix, e.g. linear-classifier or linear."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="A model the lesson offers (see dlc models --lesson ID)."),
    variant: str = typer.Option("", "--variant", "-v", help="A named configuration of the lesson (see dlc lesson show ID)."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Change a knob: --set lr=0.05 (repeatable; dotted keys like train.lr work too)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Number of epochs (with --resume: continue up to this many)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda (or cuda:N) or mps."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed of data, initialisation and shuffling."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset: shapes, digits, blobs, moons, circles, spirals, xor, mnist, fashion-mnist, cifar10, imagefolder."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder of a real dataset (mnist, cifar10, imagefolder ...)."),
    download: bool = typer.Option(False, "--download", help="Fetch the real dataset into --data-dir if it is missing."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary on stdout at the end (progress goes to stderr)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue a stopped run (its id or a unique part of it)."),
    from_runs: list[str] = typer.Option([], "--from", help="For a lesson that builds on another lesson's trained model: the run to use (default: your newest that fits; none: its default trains first)."),
    grid: bool = typer.Option(False, "--grid", help="Run every variant of the lesson in turn (same seed and data), then one chart and table comparing them."),
    predict: bool = typer.Option(False, "--predict", help="First answer the lesson's prediction questions for this run; they are marked when it ends."),
    use: list[str] = typer.Option([], "--use", help="Train with your passing exercise NAME in place of the project's own function (dlc exercise list); repeatable."),
    nproc_per_node: int = typer.Option(1, "--nproc-per-node", help="Processes on this machine (one per GPU); >1 runs under torchrun with DDP.", rich_help_panel="Several processes or machines"),
    nnodes: int = typer.Option(1, "--nnodes", help="Machines taking part; start the same command on each.", rich_help_panel="Several processes or machines"),
    node_rank: int = typer.Option(0, "--node-rank", help="This machine's index, 0 … nnodes-1; node 0 is the one at --rdzv-endpoint, takes rank 0 and writes the run folder.", rich_help_panel="Several processes or machines"),
    rdzv_endpoint: str = typer.Option("", "--rdzv-endpoint", help="HOST:PORT of node 0, reachable from every node (with --nnodes > 1).", rich_help_panel="Several processes or machines"),
) -> None:
    """Run a lesson's experiment headless: live progress, then a table of final metrics.

    Examples:  dlc run linear   ·   dlc run single-neuron --variant overfit   ·
    dlc run mlp --set hidden=8 --epochs 20   ·   dlc run linear --resume 20261126-1530   ·
    dlc run training-techniques --grid
    """
    from dlcourse_tui.engine.launch import check_launch, in_torchrun_worker
    from dlcourse_tui.lessons import find_lesson

    les = find_lesson(lesson)
    if grid and (resume is not None or variant or nproc_per_node > 1 or nnodes > 1):
        raise UserError("--grid runs every variant of the lesson, one after another in this process; "
                        "drop --resume, --variant and --nproc-per-node (or resume one arm on its own).")
    if grid and in_torchrun_worker():
        raise UserError(f"--grid runs every variant of the lesson, one after another in one process, not under torchrun "
                        f"(WORLD_SIZE={os.environ.get('WORLD_SIZE')} here): start it as dlc run {les.id} --grid.")
    check_launch(nproc_per_node=nproc_per_node, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint)
    if use:
        from dlcourse_tui.exercises.use import check_use_options

        check_use_options(use, grid=grid, resume=resume)
    record = None
    if resume is not None and not resume.strip():
        raise UserError("--resume needs the id of the run to continue (or a unique part of it); "
                        "list them with: dlc runs list")
    if resume is not None:
        from dlcourse_tui.engine.config import RunConfig
        from dlcourse_tui.engine.runs import find_run

        record = find_run(resume)
        if record.config["lesson"] != les.id:
            raise UserError(f"run {record.id} belongs to lesson {record.config['lesson']}, not {les.id}: "
                            f"dlc run {record.config['lesson']} --resume {record.id}")
        changed = [name for name, v in (("--model", model), ("--variant", variant or None), ("--set", sets or None),
                   ("--device", device), ("--seed", seed), ("--data", data), ("--data-dir", data_dir)) if v]
        if changed:
            raise UserError(f"--resume continues run {record.id} exactly as it was; drop {', '.join(changed)} "
                            "(only --epochs may change) or start a new run.")
        config = RunConfig.from_dict(record.config)
    else:
        overrides = {"model.name": model, "train.epochs": epochs, "train.device": device, "train.seed": seed,
                     "data.name": data, "data.dir": str(data_dir) if data_dir else None, "data.download": download or None}
        clear: tuple[str, ...] = ()
        if data is not None:
            _check_data_name(data)
            from dlcourse_tui.data import REAL

            if data in REAL:  # the lesson's sizes are for its embedded data: take all, unless set here
                clear = ("data.n_train", "data.n_val")
        if model is not None and model not in les.models:
            from dlcourse_tui.models.registry import get_entry

            get_entry(model)  # unknown -> suggestion
            raise UserError(f"lesson {les.id} offers the models {', '.join(les.models)}, not {model!r}.")
        if grid:
            if les.needs or from_runs:
                raise UserError(f"--grid does not build on earlier runs yet, and lesson {les.id} does: "
                                "run its variants one at a time with --variant.")
            from dlcourse_tui.cli.grid import run_grid

            raise typer.Exit(run_grid(les, sets=sets, overrides=overrides, clear=clear, as_json=as_json))
        config = les.config(variant=variant, sets=sets, overrides=overrides, clear=clear)
    if record is not None and from_runs:
        raise UserError(f"--resume continues run {record.id} on the runs it was built on; drop --from.")
    if record is None and (les.needs or from_runs):
        if nproc_per_node > 1 or nnodes > 1:
            raise UserError(f"lesson {les.id} builds on an earlier run, which several processes do not load yet; "
                            "drop --nproc-per-node.")
        config, code = with_upstream(les, config, from_runs, as_json=as_json)
        if code:
            raise typer.Exit(code)
    if use:
        from dlcourse_tui.exercises.use import record_use

        config = record_use(config, use)  # checked to pass, and recorded in the run's config as task.use
    walk = None
    if predict:
        if grid or nproc_per_node > 1 or nnodes > 1:
            raise UserError("--predict asks its questions for one run in this process: drop --grid and --nproc-per-node.")
        from dlcourse_tui.cli.console import err as console
        from dlcourse_tui.cli.predict import ask_before
        from dlcourse_tui.course.walkthrough import Walkthrough

        walk = Walkthrough(les)
        ask_before(walk, config.to_dict(), console, interactive=sys.stdin.isatty())  # then marked after the run
    if (nproc_per_node > 1 or nnodes > 1) and "RANK" not in os.environ:
        exit_code = launch_distributed(config, nproc_per_node=nproc_per_node, nnodes=nnodes, node_rank=node_rank,
                                       rdzv_endpoint=rdzv_endpoint)
    else:
        from dlcourse_tui.exercises.use import plugged

        with plugged(config):  # the learner's functions of task.use, for this run only
            exit_code = run_headless(config, record=record, epochs=epochs if record else None, as_json=as_json, walk=walk)
        from dlcourse_tui.engine.distributed import exit_worker
        from dlcourse_tui.engine.launch import context_from_env

        if context_from_env() is not None:  # a torchrun worker
            exit_worker(exit_code)
    raise typer.Exit(exit_code)


LAUNCHER_OPTIONS = ("--nproc-per-node", "--nnodes", "--node-rank", "--rdzv-endpoint")
RUN_ID_FILE_ENV = "DLC_RUN_ID_FILE"  # where rank 0 writes the run id for the launching process


def worker_args(argv: list[str]) -> list[str]:
    """`dlc run ...` arguments without the launcher's own options (each worker is one process)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LAUNCHER_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(o + "=" for o in LAUNCHER_OPTIONS)):
            out.append(arg)
    return out


def launch_distributed(config, *, nproc_per_node: int, nnodes: int, node_rank: int, rdzv_endpoint: str) -> int:
    """Start this same command under torchrun and wait; report how the run ended."""
    import subprocess
    import tempfile

    from dlcourse_tui.cli.console import err
    from dlcourse_tui.cli.interrupt import StopRequest
    from dlcourse_tui.engine.devices import resolve_device
    from dlcourse_tui.engine.distributed import check_launch_device
    from dlcourse_tui.engine.launch import end_with_parent, launcher_command
    from dlcourse_tui.engine.runs import find_run
    from dlcourse_tui.engine.session import check_distributable

    check_distributable(config, nproc_per_node * nnodes)
    check_launch_device(resolve_device(config.train.device), nproc_per_node)
    cmd = launcher_command(worker_args(sys.argv[1:]), nproc_per_node=nproc_per_node, nnodes=nnodes,
                           node_rank=node_rank, rdzv_endpoint=rdzv_endpoint)
    _fetch_data_once(config)
    with tempfile.TemporaryDirectory(prefix="dlc-launch-") as tmp:
        id_file = Path(tmp) / "run-id"
        # torchrun runs in its own session, so a terminal's Ctrl+C reaches only this process, which
        # passes it on once; torchrun hands it to every worker, and the workers stop together and
        # checkpoint. SIGTERM and SIGHUP (a closed SSH session) are passed on the same way, and
        # torchrun gets SIGTERM if this process dies without passing anything on.
        proc = subprocess.Popen(cmd, env={**os.environ, RUN_ID_FILE_ENV: str(id_file)}, start_new_session=True,
                                preexec_fn=end_with_parent)
        request = StopRequest()
        rc = _wait_forwarding_signals(proc, request)
        run_id = id_file.read_text().strip() if id_file.exists() else ""
    if not run_id:
        if node_rank > 0:
            if rc:
                err.print(f"[bold red]node {node_rank}: the distributed run failed[/] (torchrun exit code {rc}); "
                          "the failing rank and its error are in the lines above and in the run folder on node 0.")
            else:
                err.print(f"node {node_rank}: done; the run folder and checkpoint are on node 0 ({escape(rdzv_endpoint)}).")
            return 1 if rc else 0
        if rc:
            err.print(f"[bold red]the distributed run failed before it started[/] (torchrun exit code {rc}).")
        return 1 if rc else 0
    summary = find_run(run_id).summary
    status = summary.get("status")
    if status == "failed":
        err.print(f"[bold red]run failed:[/] {escape(summary.get('message', 'see the traceback in the run folder'))}", soft_wrap=True)
        return 1
    if status == "stopped":
        return request.exit_code
    return 0 if rc == 0 and status == "completed" else 1


def _wait_forwarding_signals(proc, request) -> int:
    """Wait for torchrun; pass the first SIGINT, SIGTERM or SIGHUP on to it (SIGINT as SIGINT,
    else SIGTERM) and record it in `request` (a StopRequest)."""
    from dlcourse_tui.cli.interrupt import STOP_SIGNALS, say

    def forward(signum, frame) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        request.signum = signum
        proc.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)
        say(f"\n{request.name}: stopping all processes after this read-back and saving a checkpoint…")

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _fetch_data_once(config) -> None:
    """With --download, fetch a missing real dataset here, once, before the workers start.

    Otherwise every process of this machine would download the same files into the same
    folder at the same time.
    """
    from dlcourse_tui.data import REAL

    if config.data not in REAL or config.data == "imagefolder" or not config.data_args.get("download") \
            or not config.data_args.get("dir"):
        return  # nothing to fetch, or an error each worker reports
    from dlcourse_tui.data.real import missing_files

    if not missing_files(config.data, Path(config.data_args["dir"]).expanduser()):
        return
    from dlcourse_tui.data import load_dataset

    load_dataset(config.data, seed=config.train.seed, args=config.data_args, lesson=config.lesson)


def _check_data_name(name: str) -> None:
    from dlcourse_tui.data import DATASET_NAMES
    from dlcourse_tui.errors import suggest

    if name not in DATASET_NAMES:
        hint = suggest(name, DATASET_NAMES) or f" Datasets: {', '.join(DATASET_NAMES)}."
        raise UserError(f"--data {name}: no such dataset.{hint}")


def run_headless(config, *, record=None, epochs: int | None = None, as_json: bool = False, walk=None,
                 summary_json: bool = True) -> int:
    """Prepare, run with progress on the console and Ctrl+C as a graceful stop; the exit code.
    With `as_json`, progress goes to stderr and (unless not `summary_json`) the summary to stdout."""
    from dlcourse_tui.cli.console import err, out
    from dlcourse_tui.cli.interrupt import say, stop_on_signals
    from dlcourse_tui.cli.report import HeadlessReport
    from dlcourse_tui.engine.events import RunFailed
    from dlcourse_tui.engine.session import execute, prepare_run

    from dlcourse_tui.engine.launch import context_from_env

    dist = context_from_env()
    console = err if as_json else out
    if dist is not None and not dist.is_main:  # rank 0 alone reports; the others speak only of failure
        from rich.console import Console

        console = Console(file=io.StringIO())
    stop = threading.Event()
    # torchrun passes a stop on to its workers as SIGTERM; a one-process run takes SIGTERM and
    # SIGHUP (SLURM, CI, a closed SSH session) like Ctrl+C: stop after this step, checkpoint
    message = None if dist is not None and not dist.is_main else \
        "stopping after this step and saving a checkpoint (again to abort)…"  # rank 0 speaks for the run
    with stop_on_signals(stop, message) as request:
        with console.status("preparing data and model…") if console.is_terminal else nullcontext():
            prepared = prepare_run(config, resume=record, epochs=epochs)
        if stop.is_set():
            say(f"{request.name} while preparing: stopped before the first step; no run folder was written.")
            return request.exit_code
        report = HeadlessReport(console)
        listeners = [report]
        if os.environ.get(RUN_ID_FILE_ENV) and (dist is None or dist.is_main):
            listeners.append(_write_run_id(Path(os.environ[RUN_ID_FILE_ENV])))
        try:
            store, final = execute(prepared, listeners, stop_event=stop)
        finally:
            report.close()
    if dist is not None and not dist.is_main:
        if isinstance(final, RunFailed):
            err.print(f"rank {dist.rank}: run failed: {final.message}", soft_wrap=True, markup=False)
            return 1
        return 0 if final.status == "completed" else request.exit_code
    summary = {"run_id": store.id, "path": str(store.path), "lesson": config.lesson, "model": config.model,
               "data": config.data, **store.record.summary}
    if isinstance(final, RunFailed):  # the sentence on stderr, where a learner looks for errors
        err.print(f"[bold red]run failed:[/] {escape(final.message)}", soft_wrap=True)
        err.print(f"  folder {store.path}", soft_wrap=True, markup=False)
        if as_json and summary_json:
            print(json.dumps(summary, indent=2))
        return 1
    print_final(console, store, final, config)
    try:  # after SIGHUP the terminal may be gone
        print_diagnoses(console, store, config)
    except OSError:
        pass
    if walk is not None and final.status == "completed":
        from dlcourse_tui.cli.predict import mark_after

        mark_after(walk, store.id, err if as_json else console)
    if as_json and summary_json:
        print(json.dumps({**summary, **store.record.summary}, indent=2))
    if final.status == "stopped":
        try:  # after SIGHUP the terminal may be gone; the run folder says it all
            console.print(f"Stopped at {where_stopped(final.step, prepared.task.steps_per_epoch())}; checkpoint saved.\n"
                          f"Resume with: dlc run {config.lesson} --resume {store.id}")
        except OSError:
            pass
        return request.exit_code
    return 0


def with_upstream(les, config, chosen: list[str], *, as_json: bool):  # noqa: ANN001, ANN201 - (RunConfig, int)
    """`config` with the runs its lesson builds on; a missing one is trained first, headless
    with its own progress and run folder (then 0), or the exit code of that run when it did
    not complete."""
    from dlcourse_tui.cli.console import err, out
    from dlcourse_tui.engine.upstream import resolve_upstream, upstream_config

    console = err if as_json else out
    config, missing = resolve_upstream(config, les.needs, chosen)
    for need in missing:
        console.print(f"Lesson {les.id} builds on {need.describe()} ({need.name}"
                      f"{': ' + need.help if need.help else ''}). You have none yet, so {need.lesson}'s default "
                      "trains first, in its own run folder; then this run starts.", soft_wrap=True, markup=False)
        code = run_headless(upstream_config(need), as_json=as_json, summary_json=False)
        if code:
            console.print(f"The {need.lesson} run did not complete, so {les.id} did not start. Finish it "
                          f"(dlc runs list shows it; resume it with dlc run {need.lesson} --resume ID), then run "
                          f"{les.id} again.", soft_wrap=True, markup=False)
            return config, code
        config, _ = resolve_upstream(config, [need])
    for name, run_id in config.upstream.items():
        console.print(f"{name}: builds on run {run_id}", markup=False)
    return config, 0


def print_diagnoses(console, store, config) -> None:
    """What the run's curves say (course/diagnostics.py), printed and kept in its summary."""
    from dlcourse_tui.course.diagnostics import diagnose_run

    for d in diagnose_run(store.record, config):
        console.print(f"[yellow]diagnosis:[/] {escape(d.text)}", soft_wrap=True)


def where_stopped(step: int, steps_per_epoch: int) -> str:
    """'step 144, 16 of 64 into epoch 3' (or 'step 128, the end of epoch 2') for a stop after `step`."""
    done, into = divmod(step, steps_per_epoch)
    if into == 0:
        return f"step {step}, the end of epoch {done}" if done else "step 0, before the first step"
    return f"step {step}, {into} of {steps_per_epoch} steps into epoch {done + 1}"


def _write_run_id(path: Path):
    """A callback that writes the run id to `path` once the run has one."""
    from dlcourse_tui.engine.events import RunStarted

    def listen(event) -> None:
        if isinstance(event, RunStarted):
            path.write_text(event.run_id)

    return listen


def print_final(console: "Console", store, final, config) -> None:
    """The final table: metrics, target, time, pictures and where the run lives."""
    from rich.table import Table

    from dlcourse_tui.lessons import find_lesson

    console.print(f"[bold]{config.lesson}[/] · {config.model} on {config.data} · {final.status}")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in final.metrics.items():
        table.add_row(k, f"{v * 100:.2f}%" if k.endswith("acc") else str(v) if isinstance(v, int) else f"{v:.4f}")
    table.add_row("time", f"{final.elapsed:.1f} s")
    table.add_row("steps", str(final.step))
    console.print(table)
    target = find_lesson(config.lesson).target
    if target and target.value is not None and target.metric in final.metrics:
        ok = target.met(final.metrics)
        sign = "≥" if target.mode == "max" else "≤"
        console.print(f"target {target.metric} {sign} {target.value:g}: " + ("[green]reached[/]" if ok else "[yellow]not reached[/]"))
    for pic in store.record.pictures():
        console.print(f"picture {pic.stem}: {pic}", soft_wrap=True)
    console.print(f"See it all with: dlc runs show {store.id}")
