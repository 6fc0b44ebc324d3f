"""Lessons' default runs, headless, as a learner starts them (`dlc run LESSON --json`): the
whole command's wall time, its ratio to the convolutional-networks lesson's default run
timed in the same sitting (the unit every lesson's budget is given in), the CPU threads the
run chose and why, the lesson's headline metric and whether its target was reached.

    python bench/bench_lessons.py                       # every lesson, the CNN lesson first
    python bench/bench_lessons.py gan diffusion         # these, after the CNN lesson
    python bench/bench_lessons.py --no-unit mlp         # without the CNN run (no ratio)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

UNIT = "convolutional-networks"


def run(lesson: str, env: dict[str, str], variant: str) -> tuple[float, dict | None, str]:
    cmd = [sys.executable, "-m", "dlcourse_tui.cli", "run", lesson, "--json"] + (["--variant", variant] if variant else [])
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        return wall, None, r.stderr.strip()[-300:]
    target = next((l for l in r.stderr.splitlines() if l.startswith("target")), "-")
    return wall, json.loads(r.stdout), target


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lessons", nargs="*")
    p.add_argument("--variant", default="")
    p.add_argument("--no-unit", action="store_true", help=f"do not time {UNIT} first")
    args = p.parse_args()
    sys.path.insert(0, os.getcwd())
    from dlcourse_tui.lessons import headline_chart, load_lessons
    from dlcourse_tui.render.text import metric_text

    lessons = args.lessons or [l.id for l in load_lessons()]
    if not args.no_unit:
        lessons = [UNIT] + [l for l in lessons if l != UNIT]
    env = {**os.environ, "DLC_HOME": tempfile.mkdtemp(prefix="dlc-bench-")}
    try:
        load = "load average %.2f" % os.getloadavg()[0]
    except OSError:
        load = ""
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, {load}")
    print(f"{'lesson':<24} {'wall s':>7} {'× CNN':>6}  {'result':<24} {'threads':<8} target")
    unit = None
    for lesson in lessons:
        wall, summary, target = run(lesson, env, args.variant)
        if summary is None:
            print(f"{lesson:<24} failed: {target}")
            continue
        if lesson == UNIT and not args.no_unit:
            unit = wall
        chart = headline_chart(summary["lesson"])
        value = summary["metrics"].get(chart.val)
        result = f"{chart.title} {metric_text(chart.val, value)}" if value is not None else "-"
        ratio = f"{wall / unit:6.2f}" if unit else "     -"
        threads = str(summary.get("threads", "")).split(" (")[0] or "-"
        print(f"{lesson:<24} {wall:7.1f} {ratio}  {result:<24} {threads:<8} {target}", flush=True)


if __name__ == "__main__":
    main()
