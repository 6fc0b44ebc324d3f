"""The run store: one folder per run under $DLC_HOME/runs (or the per-user data folder).

runs/<id>/config.json     the RunConfig
          metrics.jsonl   one JSON object per line: {"type": "step"|"epoch"|"eval", ...}
          summary.json    status (running, completed, stopped, failed), final metrics, message
          checkpoint.pt   for --resume (engine/checkpoint.py)
          pictures/*.png  the lesson's pictures, latest of each name
          tables/*.json   tables such as the gradient check
          traceback.txt   only when a run raised

RunStore is a callback (it listens to a Trainer's events). Nothing here imports torch.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dlcourse_tui.engine.events import (
    EpochEnded, Evaluated, Event, PictureReady, RunFailed, RunFinished, RunStarted, StepEnded, TableReady,
)
from dlcourse_tui.errors import UserError, suggest

CHECKPOINT_NAME = "checkpoint.pt"


def dlc_home() -> Path:
    """$DLC_HOME, else $XDG_DATA_HOME/dlc, else ~/.local/share/dlc."""
    if os.environ.get("DLC_HOME"):
        return Path(os.environ["DLC_HOME"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dlc"


def runs_root() -> Path:
    return dlc_home() / "runs"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file, then os.replace: readers never see half of it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def make_run_dir(root: Path, lesson: str, model: str) -> Path:
    """Create and return root/<date>-<time>-<lesson>-<model> (-2, -3 ... if taken).

    mkdir is the test and the claim in one step, so runs started at the same second by
    several processes each get their own folder.
    """
    base = f"{datetime.now():%Y%m%d-%H%M%S}-{lesson}-{model}"
    for n in itertools.count(1):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class RunRecord:
    """A past or running run as found on disk."""

    id: str
    path: Path

    @property
    def config(self) -> dict[str, Any]:
        return json.loads((self.path / "config.json").read_text())

    @property
    def summary(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            return {"status": "unknown"}

    @property
    def status(self) -> str:
        s = self.summary
        if s.get("status") == "running" and not _alive(s.get("pid")):
            return "interrupted"
        return s.get("status", "unknown")

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_NAME

    def metrics(self) -> list[dict[str, Any]]:
        """Every metrics line; a torn last line (a crash mid-write) is skipped."""
        out = []
        path = self.path / "metrics.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def annotate(self, **fields: Any) -> None:
        """Add `fields` to summary.json (atomically), e.g. a front end's diagnoses."""
        write_json_atomic(self.path / "summary.json", {**self.summary, **fields})

    def pictures(self) -> list[Path]:
        return sorted((self.path / "pictures").glob("*.png"))

    def tables(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted((self.path / "tables").glob("*.json"))]


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_runs(root: Path | None = None) -> list[RunRecord]:
    """Every run folder with a config.json, oldest first."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    return [RunRecord(p.name, p) for p in sorted(root.iterdir()) if (p / "config.json").is_file()]


def find_run(query: str, root: Path | None = None) -> RunRecord:
    """The run whose id is `query`, or the one id containing it; "last" is the newest run."""
    runs = list_runs(root)
    where = root or runs_root()
    if query in ("last", "latest"):
        if not runs:
            raise UserError(f"no runs yet in {where}. Start one with: dlc run linear-classifier")
        return max(runs, key=lambda r: r.path.stat().st_mtime)
    for r in runs:
        if r.id == query:
            return r
    hits = [r for r in runs if query in r.id]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        newest = ", ".join(h.id for h in hits[-3:])
        raise UserError(f"run {query!r} is ambiguous: {len(hits)} runs match (newest: {newest}); give more of the id.")
    raise UserError(f"no run {query!r} in {where}.{suggest(query, [r.id for r in runs])} List runs with: dlc runs list")


class RunStore:
    """Writes one run's folder as its events arrive (a Trainer callback)."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record
        self.path = record.path
        self._metrics = None

    @classmethod
    def create(cls, config: dict[str, Any], root: Path | None = None) -> "RunStore":
        """A new run folder with config.json and a 'running' summary."""
        root = root or runs_root()
        root.mkdir(parents=True, exist_ok=True)
        path = make_run_dir(root, config["lesson"], config["model"]["name"])
        write_json_atomic(path / "config.json", config)
        store = cls(RunRecord(path.name, path))
        store._write_summary({"status": "running", "started": _now()})
        return store

    @classmethod
    def reopen(cls, record: RunRecord, step: int, config: dict[str, Any]) -> "RunStore":
        """Continue `record` from checkpoint step `step`: drop metric lines written after it."""
        store = cls(record)
        lines = [m for m in record.metrics() if m.get("step", 0) <= step]
        with open(record.path / "metrics.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(m) + "\n" for m in lines)
        write_json_atomic(record.path / "config.json", config)
        store._write_summary({**record.summary, "status": "running", "resumed": _now()})
        return store

    @property
    def id(self) -> str:
        return self.record.id

    def _write_summary(self, summary: dict[str, Any]) -> None:
        summary = {**summary, "pid": os.getpid(), "updated": _now()}
        write_json_atomic(self.path / "summary.json", summary)

    def _append(self, line: dict[str, Any]) -> None:
        if self._metrics is None:
            self._metrics = open(self.path / "metrics.jsonl", "a", encoding="utf-8")
        self._metrics.write(json.dumps(line) + "\n")
        self._metrics.flush()

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepEnded):
            self._append({"type": "step", "step": event.step, "epoch": event.epoch, "time": round(event.elapsed, 3), **event.metrics})
        elif isinstance(event, EpochEnded):
            self._append({"type": "epoch", "step": event.step, "epoch": event.epoch, "time": round(event.elapsed, 3), **event.metrics})
        elif isinstance(event, Evaluated):
            self._append({"type": "eval", "step": event.step, "epoch": event.epoch, **event.metrics})
        elif isinstance(event, PictureReady):
            from dlcourse_tui.render.images import save_png

            save_png(event.pixels, self.path / "pictures" / f"{event.name}.png")
        elif isinstance(event, TableReady):
            (self.path / "tables").mkdir(exist_ok=True)
            write_json_atomic(self.path / "tables" / f"{event.name}.json",
                              {"title": event.title, "columns": list(event.columns), "rows": [list(r) for r in event.rows]})
        elif isinstance(event, RunStarted):
            s = self.record.summary
            self._write_summary({**s, "device": event.device, "num_params": event.num_params,
                                 "total_steps": event.total_steps, "threads": event.threads})
        elif isinstance(event, RunFinished):
            self.close()
            self._write_summary({**self.record.summary, "status": event.status, "step": event.step, "epoch": event.epoch,
                                 "metrics": event.metrics, "elapsed": round(event.elapsed, 3), "finished": _now()})
        elif isinstance(event, RunFailed):
            self.close()
            if event.traceback:
                (self.path / "traceback.txt").write_text(event.traceback)
            summary = self.record.summary
            if summary.get("status") == "failed":  # another rank failed first: its cause stands
                return
            self._write_summary({**summary, "status": "failed", "step": event.step,
                                 "message": event.message, "finished": _now()})


class RankFailureRecorder:
    """A distributed run's failure, named by rank, in rank 0's run folder; the first one stands.

    When one rank fails, its peers fail after it ("Connection closed by peer" from gloo):
    their failures follow from the first and must not overwrite it. Rank 0 listens with
    one of these ahead of its RunStore, so its own failure is named by rank as well.
    """

    def __init__(self, run_dir: Path, rank: int) -> None:
        self.record = RunRecord(run_dir.name, run_dir)
        self.rank = rank

    def __call__(self, event: Event) -> None:
        if not isinstance(event, RunFailed) or not self.record.path.is_dir():
            return  # no failure, or the folder is on another machine: this rank's stderr names it
        message = event.message
        if self.rank != 0:  # rank 0's RunStore writes traceback.txt
            name = f"traceback-rank{self.rank}.txt"
            message = message.replace("traceback.txt", name)
            if event.traceback:
                (self.record.path / name).write_text(event.traceback)
        summary = self.record.summary
        if summary.get("status") == "failed":  # a rank failed before this one: the cause is already recorded
            return
        write_json_atomic(self.record.path / "summary.json",
                          {**summary, "status": "failed", "step": event.step, "failed_rank": self.rank,
                           "message": f"rank {self.rank}: {message}", "finished": _now()})


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def metric_series(metrics: list[dict[str, Any]], kind: str, name: str) -> tuple[list[float], list[float]]:
    """(steps, values) of metric `name` in lines of type `kind`."""
    xs, ys = [], []
    for m in metrics:
        if m.get("type") == kind and name in m:
            xs.append(m["step"])
            ys.append(m[name])
    return xs, ys


def steps_per_epoch(metrics: list[dict[str, Any]]) -> int:
    """Steps in one epoch, read off a run's epoch lines (0 when it has none)."""
    ends = [m["step"] for m in metrics if m.get("type") == "epoch" and m.get("epoch") == 1]
    return int(ends[0]) if ends else 0
