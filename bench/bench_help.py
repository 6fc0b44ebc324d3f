"""Wall time of `dlc --help` (and whether torch got imported), median of N runs.

    python bench/bench_help.py [-n 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

PROBE = ("import sys; sys.argv=['dlc','--help']\nfrom dlcourse_tui.cli.app import main\n"
         "try: main()\nexcept SystemExit: pass\nsys.stderr.write('torch imported' if 'torch' in sys.modules else 'torch not imported')")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=10)
    n = p.parse_args().n
    times = []
    for _ in range(n + 1):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
    times = times[1:]  # first run warms the file cache
    print(f"dlc --help: median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms over {n} runs; {r.stderr.strip()}")


if __name__ == "__main__":
    main()
