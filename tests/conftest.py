"""Shared fixtures: every test gets its own DLC_HOME and cache folder, so runs never mix."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def dlc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dlc-home"
    monkeypatch.setenv("DLC_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the help cache (cli/entry.py)
    monkeypatch.delenv("DLC_LESSONS", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    # one CPU thread for every run: twin runs compared bit for bit must not each time their
    # threads and pick different counts (float sums split over 2 threads differ in the last
    # bits); tests of the timing itself unset it
    monkeypatch.setenv("DLC_THREADS", "1")
    return home


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny test models run fastest and most reproducibly on one thread."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def dlc(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """Run `dlc ARGS...` in this process; returns exit code, stdout and stderr."""
    from dlcourse_tui.cli.app import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["dlc", *args])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `cuda` run where torch sees a GPU and are skipped elsewhere; with
    DLC_TEST_CUDA=1 (bench/gpu_check.sh) a machine without one is an error, not a skip."""
    import os

    import torch

    if torch.cuda.is_available():
        return
    if os.environ.get("DLC_TEST_CUDA") == "1":
        raise pytest.UsageError("DLC_TEST_CUDA=1, but torch sees no CUDA device here "
                                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}).")
    skip = pytest.mark.skip(reason="needs a CUDA GPU (bench/gpu_check.sh runs these on one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
