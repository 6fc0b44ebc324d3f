"""The same run under torchrun with two CPU processes (gloo, loopback only).

Every process these tests start is bounded in time: past its limit, the launcher,
torchrun and the workers are all killed (they live in separate sessions, so the whole
process tree is collected first), and the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlcourse_tui.engine.checkpoint import load_checkpoint
from dlcourse_tui.engine.events import RunFailed
from dlcourse_tui.engine.runs import RankFailureRecorder

RUN = ["run", "mlp", "--set", "n_train=256", "--set", "n_val=64", "--set", "batch_size=64", "--set", "log_every=2"]
LONG_RUN = ["run", "mlp", "--set", "n_train=2048", "--set", "n_val=64", "--set", "batch_size=64", "--epochs", "1000"]
# gloo's connections on the loopback interface; the launcher's own rendezvous is on localhost
# (--standalone) or 127.0.0.1 (the tests' --rdzv-endpoint). torch's TCPStore has no bind-address
# option, so its listening socket takes the wildcard address, but nothing connects from elsewhere.
LOOPBACK = {"GLOO_SOCKET_IFNAME": "lo" if sys.platform.startswith("linux") else "lo0", "MASTER_ADDR": "127.0.0.1"}
GLOO_FAILURE = ("RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] "
                "Connection closed by peer [127.0.0.1]:34473")


def start(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`dlc ARGS` in the background, in a session of its own, on loopback."""
    return subprocess.Popen([sys.executable, "-m", "dlcourse_tui.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, **LOOPBACK, "OMP_NUM_THREADS": "1", "DLC_HOME": str(home), **(env or {})})


def finish(proc: subprocess.Popen, timeout: float = 120) -> subprocess.CompletedProcess:
    """Wait for `proc`; past `timeout`, kill it with all its descendants and fail."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(proc.args[3:])} ran past {timeout} s; it and its processes were killed.\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def dlc(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return finish(start(home, *args, env=env), timeout)


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid`'s process group and every descendant (torchrun and its workers have sessions of their own)."""
    tree = descendants(pid)
    for kill in [lambda: os.killpg(pid, signal.SIGKILL), *(lambda p=p: os.kill(p, signal.SIGKILL) for p in tree)]:
        try:
            kill()
        except (ProcessLookupError, PermissionError):
            pass


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (not zombies)."""
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    """The reference: RUN for 2 epochs in one process, this one (torchrun adds nothing to compare)."""
    from dlcourse_tui.lessons import find_lesson
    from helpers import run_to_end

    home = tmp_path_factory.mktemp("single")
    sets = [RUN[i + 1] for i, a in enumerate(RUN) if a == "--set"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLC_HOME", str(home))
        store, final, _ = run_to_end(find_lesson("mlp-backprop").config(sets=[*sets, "threads=1"],
                                                                          overrides={"train.epochs": 2}))
    assert final.status == "completed", final
    return store.path


@pytest.fixture
def dlc_here(dlc):
    """`dlc ARGS` in this process (conftest's fixture): refusals and `runs show` need no torchrun."""
    return dlc


def test_a_distributed_run_equals_one_process_and_its_checkpoint_resumes_in_one_process_and_back(
        single, tmp_path, dlc_here, monkeypatch) -> None:
    # the one-process halves run in this process: only the torchrun halves need a launcher
    two = tmp_path / "two-then-one"
    assert dlc(two, *RUN, "--epochs", "1", "--nproc-per-node", "2").returncode == 0
    run = only_run(two)
    monkeypatch.setenv("DLC_HOME", str(two))
    r = dlc_here("run", "mlp", "--resume", run.name, "--epochs", "2")
    assert r.code == 0, r.err
    assert_same_params(single, run)

    one = tmp_path / "one-then-two"
    monkeypatch.setenv("DLC_HOME", str(one))
    assert dlc_here(*RUN, "--epochs", "1").code == 0
    run = only_run(one)
    r = dlc(one, "run", "mlp", "--resume", run.name, "--epochs", "2", "--nproc-per-node", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_params(single, run)  # two processes reach the parameters of one with the same global batch
    # the folder looks like a one-process run's: one metrics file, one checkpoint, no rank files
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in single.iterdir())
    steps = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(l)["step"] for l in (single / "metrics.jsonl").read_text().splitlines()]
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    show = dlc_here("runs", "show", run.name, "--no-pictures")
    assert show.code == 0 and "completed" in show.out


@pytest.mark.parametrize("rank", [1])  # rank 0's failure takes the same recorder (checked in-process below)
def test_a_rank_that_raises_ends_the_run_with_its_error(tmp_path, rank) -> None:
    r = dlc(tmp_path, *RUN, "--epochs", "50", "--nproc-per-node", "2", env={"DLC_FAULT_INJECT": f"rank={rank},step=3"})
    assert r.returncode == 1
    cause = f"rank {rank}: The run failed at step 3: RuntimeError: fault injected on rank {rank} at step 3"
    # the launcher's last line names the failing rank and its error, not a peer's "Connection closed"
    assert r.stderr.strip().splitlines()[-1].startswith(f"run failed: {cause}"), r.stderr[-3000:]
    summary = json.loads((only_run(tmp_path) / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failed_rank"] == rank
    assert summary["message"].startswith(cause)  # and it ended there: dlc() bounds the run at 120 s


def test_the_first_rank_failure_stands_and_gloo_text_is_shown_verbatim(single, tmp_path, dlc_here, monkeypatch) -> None:
    home = tmp_path / "home"
    run = home / "runs" / single.name
    run.mkdir(parents=True)
    for name in ("config.json", "metrics.jsonl"):
        (run / name).write_text((single / name).read_text())
    (run / "summary.json").write_text(json.dumps({"status": "running"}))
    RankFailureRecorder(run, 1)(RunFailed(message=f"The run failed at step 3: {GLOO_FAILURE}. The full traceback "
                                          "is saved as traceback.txt in the run folder.", step=2, traceback="tb 1"))
    RankFailureRecorder(run, 0)(RunFailed(message="The run failed at step 3: RuntimeError: later", step=2, traceback=""))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["failed_rank"] == 1 and GLOO_FAILURE in summary["message"]
    assert summary["message"].endswith("saved as traceback-rank1.txt in the run folder.")
    assert (run / "traceback-rank1.txt").read_text() == "tb 1"
    monkeypatch.setenv("DLC_HOME", str(home))
    show = dlc_here("runs", "show", run.name, "--no-pictures")  # the [/__w/...] path is text, not Rich markup
    assert show.code == 0, show.err
    assert GLOO_FAILURE in show.out.replace("\n", "")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM], ids=["SIGTERM"])  # SIGHUP takes the same path (cli/run.py)
def test_a_signal_to_the_launcher_stops_every_worker_with_a_checkpoint(tmp_path, signum) -> None:
    proc, tree = start(tmp_path, *LONG_RUN, "--nproc-per-node", "2"), set()
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("runs/*/metrics.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.1)
        tree = descendants(proc.pid)
        assert len(tree) >= 3, tree  # torchrun and two workers
        t0 = time.monotonic()
        proc.send_signal(signum)
        r = finish(proc, timeout=30)
        while alive(tree) and time.monotonic() - t0 < 30:  # a bound against a hang, not a measurement
            time.sleep(0.1)
        assert not alive(tree), f"still running {time.monotonic() - t0:.1f} s after {signum.name}: {alive(tree)}"
    finally:  # whatever happened above, nothing is left running
        if proc.poll() is None:
            kill_tree(proc.pid)
        for pid in alive(tree):
            os.kill(pid, signal.SIGKILL)
    assert r.returncode == 128 + signum, r.stderr[-3000:]  # 143 for SIGTERM, 129 for SIGHUP, as one process
    run = only_run(tmp_path)
    assert json.loads((run / "summary.json").read_text())["status"] == "stopped"
    assert (run / "checkpoint.pt").is_file()


def test_two_machines_on_loopback_put_the_run_on_node_0(single, tmp_path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    args = [*RUN, "--epochs", "2", "--nnodes", "2", "--rdzv-endpoint", endpoint]
    later = start(nodes[1], *args, "--node-rank", "1")  # the order nodes start in does not matter
    first = finish(start(nodes[0], *args, "--node-rank", "0"))
    second = finish(later)
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"node 1: done; the run folder and checkpoint are on node 0 ({endpoint})" in second.stderr
    assert not (nodes[1] / "runs").exists()
    assert_same_params(single, only_run(nodes[0]))


def test_tasks_that_cannot_be_split_and_uneven_batches_are_refused(dlc_here, dlc_home, monkeypatch) -> None:
    r = dlc_here(*RUN, "--set", "batch_size=63", "--nproc-per-node", "2")
    assert r.code == 2
    assert "batch_size 63 does not split evenly over 2 processes" in r.err
    for lesson in ("gan", "diffusion"):  # two optimisers, sampling at evaluation: not split yet
        r = dlc_here("run", lesson, "--nproc-per-node", "2")
        assert r.code == 2
        assert f"lesson {lesson} ({lesson}) does not run in several processes yet" in r.err
    for rank in ("0", "1"):  # each torchrun worker of `torchrun ... -m dlcourse_tui.cli run ... --grid`
        for name, value in {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": "2"}.items():
            monkeypatch.setenv(name, value)
        r = dlc_here("run", "training-techniques", "--grid")
        assert r.code == 2
        assert r.err.strip() == ("dlc: --grid runs every variant of the lesson, one after another in one process, "
                                 "not under torchrun (WORLD_SIZE=2 here): start it as dlc run training-techniques --grid.")
    assert not (dlc_home / "runs").exists()


def test_the_launcher_downloads_a_missing_dataset_once_before_the_workers(tmp_path, monkeypatch) -> None:
    from types import SimpleNamespace

    import dlcourse_tui.data
    import dlcourse_tui.data.real
    from dlcourse_tui.cli.run import _fetch_data_once

    fetched: list[str] = []
    monkeypatch.setattr(dlcourse_tui.data, "load_dataset", lambda name, **kw: fetched.append(name))
    config = SimpleNamespace(data="cifar10", data_args={"dir": str(tmp_path), "download": True},
                             train=SimpleNamespace(seed=0), lesson="convolutional-networks")
    monkeypatch.setattr(dlcourse_tui.data.real, "missing_files", lambda name, root: [root / "data_batch_1"])
    _fetch_data_once(config)
    assert fetched == ["cifar10"]
    monkeypatch.setattr(dlcourse_tui.data.real, "missing_files", lambda name, root: [])
    _fetch_data_once(config)  # the files are there: nothing to fetch
    _fetch_data_once(SimpleNamespace(**{**vars(config), "data_args": {"dir": str(tmp_path)}}))  # no --download
    assert fetched == ["cifar10"]
