"""Lessons' default runs, headless, as a learner starts them: wall time of the whole
command, the final metrics (from `dlc run ... --json`) and the target line.

    python bench/bench_lessons.py [lesson ...] [--variant NAME]   # default: chapter 1
    python bench/bench_lessons.py autoencoder vae gan diffusion   # chapter 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

DEFAULT = ["linear-classifier", "single-neuron", "mlp-backprop"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("lessons", nargs="*", default=DEFAULT)
    p.add_argument("--variant", default="")
    args = p.parse_args()
    env = {**os.environ, "DLC_HOME": tempfile.mkdtemp(prefix="dlc-bench-")}
    print(f"{'lesson':<20} {'wall s':>7} {'train s':>8} {'val_acc':>8} {'train_acc':>9}  target")
    for lesson in args.lessons:
        cmd = [sys.executable, "-m", "dlcourse_tui.cli", "run", lesson, "--json"]
        if args.variant:
            cmd += ["--variant", args.variant]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            print(f"{lesson:<20} failed ({r.returncode}): {r.stderr.strip()[-200:]}")
            continue
        s = json.loads(r.stdout)
        m = s["metrics"]
        target = [l for l in r.stderr.splitlines() if l.startswith("target")]
        print(f"{lesson:<20} {wall:7.1f} {s['elapsed']:8.1f} {m.get('val_acc', float('nan')):8.3f} "
              f"{m.get('train_acc', float('nan')):9.3f}  {target[0] if target else '-'}")


if __name__ == "__main__":
    main()
