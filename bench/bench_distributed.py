"""Scaling of one classify run: 1 process vs N processes under the launcher (torchrun + DDP).

    python bench/bench_distributed.py [--nproc-per-node 2] [--device cpu|cuda]
        [--lesson convolutional-networks] [--epochs 2] [--n-train 2048] [--batch-size 64]
        [--rounds 1] [--set KEY=VALUE ...]

Runs `dlc run LESSON` with the same global batch, epochs, data and seed, once as one
process and once with `--nproc-per-node N`, alternating for `--rounds` rounds, each in a
fresh DLC_HOME. Prints, per setting, the images per second of training (images seen /
the run's own elapsed time from summary.json: the training loop with its evaluations
and checkpoint, not the imports, data generation and process launch), the wall time of
the whole command, and the ratio N processes / 1 process (median over rounds).

On CPU each process runs one torch thread (torchrun sets OMP_NUM_THREADS=1; small
models train on 1 thread anyway), so N processes need N free cores. On CUDA each
process takes the GPU of its local rank, so N processes need N GPUs; the 1-process run
uses one of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def run_once(args: argparse.Namespace, nproc: int) -> tuple[float, float]:
    """(images per second of training, wall seconds of the command) for one run with `nproc` processes."""
    cmd = [sys.executable, "-m", "dlcourse_tui.cli", "run", args.lesson, "--device", args.device,
           "--epochs", str(args.epochs), "--set", f"n_train={args.n_train}", "--set", f"n_val={args.n_val}",
           "--set", f"batch_size={args.batch_size}"]
    for setting in args.set:
        cmd += ["--set", setting]
    if nproc > 1:
        cmd += ["--nproc-per-node", str(nproc)]
    with tempfile.TemporaryDirectory(prefix="bench-dist-") as home:
        env = {**os.environ, "DLC_HOME": home, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()  # the launcher passes SIGTERM on to torchrun and its workers
            proc.communicate(timeout=60)
            sys.exit(f"bench: {' '.join(cmd[2:])} ran past {args.timeout} s; give a smaller --n-train or --epochs.")
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"bench: {' '.join(cmd[2:])} exited {proc.returncode}:\n{err[-3000:]}")
        (run,) = (Path(home) / "runs").iterdir()
        summary = json.loads((run / "summary.json").read_text())
    return summary["step"] * args.batch_size / summary["elapsed"], wall


def device_name(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.device_count()} × {torch.cuda.get_device_name(0)}"
    return f"cpu, {os.cpu_count()} cores"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc-per-node", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--lesson", default="convolutional-networks", help="a lesson whose task is classify")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n-train", type=int, default=2048)
    p.add_argument("--n-val", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch, split over the processes")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--set", action="append", default=[], help="more settings for both runs, e.g. --set lr=0.01")
    p.add_argument("--timeout", type=float, default=600, help="seconds one run may take")
    args = p.parse_args()
    if args.nproc_per_node < 2:
        sys.exit(f"bench: --nproc-per-node {args.nproc_per_node}: compare against 2 or more processes.")
    if args.device == "cuda" and torch.cuda.device_count() < args.nproc_per_node:
        sys.exit(f"bench: --device cuda with --nproc-per-node {args.nproc_per_node} needs that many GPUs; "
                 f"this machine has {torch.cuda.device_count()}.")
    n = args.nproc_per_node
    rates: dict[int, list[float]] = {1: [], n: []}
    walls: dict[int, list[float]] = {1: [], n: []}
    for _ in range(args.rounds):
        for nproc in (1, n):
            rate, wall = run_once(args, nproc)
            rates[nproc].append(rate)
            walls[nproc].append(wall)
    print(f"{args.lesson}: {args.n_train} images × {args.epochs} epochs, global batch {args.batch_size}, "
          f"device {device_name(args.device)}, torch {torch.__version__}, median of {args.rounds} round(s)")
    for nproc in (1, n):
        print(f"  {nproc} process{'es' if nproc > 1 else '  '}: {statistics.median(rates[nproc]):9.1f} images/s"
              f"   wall {statistics.median(walls[nproc]):6.1f} s")
    print(f"  ratio {n}/1: {statistics.median(rates[n]) / statistics.median(rates[1]):.2f}x images/s, "
          f"{statistics.median(walls[1]) / statistics.median(walls[n]):.2f}x wall")


if __name__ == "__main__":
    main()
