"""The same run under torchrun with two CPU processes (gloo, loopback only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlcourse_tui.engine.checkpoint import load_checkpoint

RUN = ["run", "mlp", "--set", "n_train=256", "--set", "n_val=64", "--set", "batch_size=64", "--set", "log_every=2"]


def dlc(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlcourse_tui.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "DLC_HOME": str(home), **(env or {})})


def only_run(home: Path) -> Path:
    runs = sorted((home / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def params(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoint.pt")["task"]["modules"]["model"]


def assert_same_params(a: Path, b: Path) -> None:
    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("single")
    r = dlc(home, *RUN, "--epochs", "2")
    assert r.returncode == 0, r.stderr
    return only_run(home)


def test_two_processes_reach_the_parameters_of_one_with_the_same_global_batch(single, tmp_path) -> None:
    r = dlc(tmp_path, *RUN, "--epochs", "2", "--nproc-per-node", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    run = only_run(tmp_path)
    assert_same_params(single, run)
    # the folder looks like a one-process run's: one metrics file, one checkpoint, no rank files
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in single.iterdir())
    steps = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(l)["step"] for l in (single / "metrics.jsonl").read_text().splitlines()]
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    show = dlc(tmp_path, "runs", "show", run.name, "--no-pictures")
    assert show.returncode == 0 and "completed" in show.stdout


def test_a_distributed_checkpoint_resumes_in_one_process_and_back(single, tmp_path) -> None:
    two = tmp_path / "two-then-one"
    assert dlc(two, *RUN, "--epochs", "1", "--nproc-per-node", "2").returncode == 0
    run = only_run(two)
    r = dlc(two, "run", "mlp", "--resume", run.name, "--epochs", "2")
    assert r.returncode == 0, r.stderr
    assert_same_params(single, run)

    one = tmp_path / "one-then-two"
    assert dlc(one, *RUN, "--epochs", "1").returncode == 0
    run = only_run(one)
    r = dlc(one, "run", "mlp", "--resume", run.name, "--epochs", "2", "--nproc-per-node", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_params(single, run)


def test_a_rank_that_raises_ends_the_run_with_its_error(tmp_path) -> None:
    t0 = time.monotonic()
    r = dlc(tmp_path, *RUN, "--epochs", "50", "--nproc-per-node", "2", env={"DLC_FAULT_INJECT": "rank=1,step=3"})
    took = time.monotonic() - t0
    assert r.returncode == 1
    assert "rank 1: The run failed at step 3: RuntimeError: fault injected on rank 1 at step 3" in r.stderr
    summary = json.loads((only_run(tmp_path) / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failed_rank"] == 1
    assert took < 60, took


def test_tasks_that_cannot_be_split_and_uneven_batches_are_refused(tmp_path) -> None:
    r = dlc(tmp_path, *RUN, "--set", "batch_size=63", "--nproc-per-node", "2")
    assert r.returncode == 2
    assert "batch_size 63 does not split evenly over 2 processes" in r.stderr
    for lesson in ("gan", "diffusion"):  # two optimisers, sampling at evaluation: not split yet
        r = dlc(tmp_path, "run", lesson, "--nproc-per-node", "2")
        assert r.returncode == 2
        assert f"lesson {lesson} ({lesson}) does not run in several processes yet" in r.stderr
    assert not (tmp_path / "runs").exists()
