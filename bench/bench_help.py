"""Wall time of `dlc --help`, median of N runs: cold (Typer renders it) and warm (the
entry point prints the help it rendered before, cli/entry.py), and whether torch, Typer
or Rich got imported on the warm path.

    python bench/bench_help.py [-n 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PROBE = ("import sys; sys.argv=['dlc','--help']\nfrom dlcourse_tui.cli.entry import main\n"
         "try: main()\nexcept SystemExit: pass\n"
         "sys.stderr.write(','.join(m for m in ('torch', 'typer', 'rich') if m in sys.modules) or 'none')")


def timed(env: dict[str, str], cache: str | None) -> tuple[float, str]:
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, r.stderr.strip()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=10)
    n = p.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": tmp}
        cache = os.path.join(tmp, "dlc")
        timed(env, cache)  # warms the file cache
        cold = [timed(env, cache)[0] for _ in range(n)]
        timed(env, None)
        warm_runs = [timed(env, None) for _ in range(n)]
    warm = [t for t, _ in warm_runs]
    for name, times in (("cold (Typer renders it)", cold), ("warm (printed from the cache)", warm)):
        print(f"dlc --help {name}: median {statistics.median(times) * 1000:.0f} ms, "
              f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {n} runs")
    print(f"imported on the warm path: {warm_runs[-1][1]}; cold/warm = {statistics.median(cold) / statistics.median(warm):.1f}x")


if __name__ == "__main__":
    main()
