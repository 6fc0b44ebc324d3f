"""Throughput of the embedded data generators: items per second, median of 3 runs.

Run from the repository root: `python bench/bench_data.py [--n 10000] [--threads T]`.
Standard library and torch only; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from dlcourse_tui.data.digits import make_digits  # noqa: E402
from dlcourse_tui.data.scenes import make_scenes  # noqa: E402
from dlcourse_tui.data.shapes import make_shapes  # noqa: E402
from dlcourse_tui.data.toy2d import TOY2D_KINDS, make_toy2d  # noqa: E402


def median_seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of `repeats` calls of fn, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    """Print one line per generator and size: seconds and items per second."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000], help="batch sizes to time")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cases: list[tuple[str, Callable[[int], object], list[int]]] = []
    for kind in TOY2D_KINDS:
        cases.append((f"toy2d/{kind}", lambda n, k=kind: make_toy2d(k, n, seed=0), [n * 10 for n in args.n]))
    cases.append(("shapes", lambda n: make_shapes(n, seed=0), args.n))
    cases.append(("shapes max_objects=3", lambda n: make_shapes(n, seed=0, max_objects=3), args.n))
    cases.append(("shapes clutter=0 noise=0", lambda n: make_shapes(n, seed=0, clutter=0.0, noise=0.0), args.n))
    cases.append(("digits", lambda n: make_digits(n, seed=0), args.n))
    cases.append(("scenes 64×64, 1-4 objects", lambda n: make_scenes(n, seed=0), args.n))
    cases.append(("scenes clutter=0 noise=0", lambda n: make_scenes(n, seed=0, clutter=0.0, noise=0.0), args.n))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of 3 runs")
    print(f"{'generator':<28}{'n':>9}{'seconds':>10}{'items/s':>12}")
    for name, make, sizes in cases:
        for n in sizes:
            sec = median_seconds(lambda: make(n))
            print(f"{name:<28}{n:>9}{sec:>10.3f}{n / sec:>12,.0f}", flush=True)


if __name__ == "__main__":
    main()
