"""How the TUI costs and feels: first paint, key-to-screen latency while training, and
trainer throughput with the dashboard attached vs headless, side by side in one run.

    python bench/bench_tui_latency.py [--presses 120] [--rounds 2] [--skip paint,keys,throughput]

(a) first paint: a fresh interpreter opens the app (headless driver) and prints when the
    lesson browser has been painted; the time is from spawning the process, and the
    line says whether torch had been imported by then.
(b) key-to-screen: while mlp-backprop trains on the CPU (its dashboard below, still
    ticking), `down`/`up` move the browser's tree cursor; each press goes through the
    driver like a terminal's keys, and is timed until the screen has been refreshed with
    the cursor on its new line (call_after_refresh). The same with the dashboard on top,
    charts live, opening and closing the help modal. p50/p95/max over the presses.
    The headless driver skips only writing the frame to a terminal; the compositor and
    every render run as usual.
(c) throughput: the same config trained headless (a plain thread, no listener but the
    run store) and in the app (dashboard visible, charts live), alternating, `--rounds`
    each; examples/s from the run's own final step count and elapsed time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

os.environ.setdefault("DLC_HOME", tempfile.mkdtemp(prefix="dlc-bench-"))
import dlcourse_tui.tui  # noqa: E402,F401 - before Textual, as `dlc` does: it sets Textual's frame rate


def load() -> str:
    try:
        one, five, _ = os.getloadavg()
        return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"
    except OSError:
        return "load average unknown"


# -- (a) first paint -----------------------------------------------------------------------
PAINT_SCRIPT = textwrap.dedent("""
    import sys, time
    from dlcourse_tui.tui.app import DLCApp

    painted = DLCApp._first_paint

    def timed(self):
        painted(self)
        print("PAINT", time.time(), "torch" in sys.modules, type(self.screen).__name__, flush=True)
        self.exit()

    DLCApp._first_paint = timed
    DLCApp(preload_torch=False).run(headless=True, size=(80, 24))
""")


def first_paint(repeats: int = 5) -> None:
    times, torch_flags = [], []
    for _ in range(repeats):
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, "-c", PAINT_SCRIPT], stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline().split()
        proc.wait(timeout=60)
        if not line or line[0] != "PAINT":
            raise SystemExit("the app did not report its first paint")
        times.append(float(line[1]) - t0)
        torch_flags.append(line[2] == "True")
        assert line[3] == "BrowserScreen", line
    print(f"(a) first paint of the lesson browser, from process spawn: median {statistics.median(times) * 1000:.0f} ms "
          f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, {repeats} runs); "
          f"torch imported by then: {'yes' if any(torch_flags) else 'no'}")


# -- (b) key-to-screen latency ---------------------------------------------------------------
def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def report(name: str, lat: list[float]) -> None:
    ms = [x * 1000 for x in lat]
    p95, worst = pct(ms, 0.95), max(ms)
    verdict = "meets" if p95 < 50 and worst < 250 else "MISSES"
    print(f"    {name}: n={len(ms)}  p50 {pct(ms, 0.5):.1f} ms  p95 {p95:.1f} ms  max {worst:.1f} ms "
          f"(press {ms.index(worst) + 1})  ({verdict} p95 < 50 ms, max < 250 ms)")


async def press_until(app, key: str, reflected) -> float:
    """Send `key` as the terminal driver does; seconds until a refresh shows `reflected()` true."""
    from textual import events

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    t0 = time.perf_counter()
    app._driver.send_message(events.Key(key, None))  # noqa: SLF001 - what a real driver does
    while not reflected():
        await asyncio.sleep(0.0005)
        if time.perf_counter() - t0 > 5:
            raise RuntimeError(f"key {key} was not reflected within 5 s")
    app.screen.call_after_refresh(lambda: done.done() or done.set_result(time.perf_counter()))
    return (await done) - t0


async def key_latency(presses: int) -> None:
    import random

    from textual.widgets import Tree

    from dlcourse_tui.lessons import find_lesson
    from dlcourse_tui.tui.app import DLCApp
    from dlcourse_tui.tui.screens.browser import BrowserScreen
    from dlcourse_tui.tui.screens.dashboard import DashboardScreen
    from dlcourse_tui.tui.screens.help import HelpScreen

    cfg = find_lesson("mlp-backprop").config(sets=["epochs=2000"])
    app = DLCApp()
    async with app.run_test(size=(80, 24)) as pilot:
        rnd = random.Random(0)
        tree = app.screen.query_one(Tree)
        while "dlcourse_tui.engine.session" not in sys.modules:  # the app imports torch after its first paint
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        lat = []
        for i in range(presses // 2):
            key, target = ("down", 2) if i % 2 == 0 else ("up", 1)
            lat.append(await press_until(app, key, lambda t=target: tree.cursor_line == t))
            await asyncio.sleep(rnd.uniform(0.01, 0.08))
        print(f"(b) key-to-screen latency ({load()}):")
        report("browser tree cursor, no run (baseline)", lat)
        handle = app.start_run(cfg)
        while len(handle.steps) < 3:
            await pilot.pause(0.05)
        # 1. browser on top, the run training behind it
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)
        tree = app.screen.query_one(Tree)
        tree.cursor_line = 1
        await pilot.pause(0.2)
        lat = []
        for i in range(presses):
            key, target = ("down", 2) if i % 2 == 0 else ("up", 1)
            lat.append(await press_until(app, key, lambda t=target: tree.cursor_line == t))
            await asyncio.sleep(rnd.uniform(0.01, 0.08))  # land at every phase of the dashboard's timer
        steps_a = len(handle.steps)
        print(f"    while mlp-backprop trains on the CPU ({load()}):")
        report("browser tree cursor, run training behind", lat)
        # 2. the dashboard on top, charts live: open and close the help modal
        await pilot.press("D")
        assert isinstance(app.screen, DashboardScreen)
        await pilot.pause(0.6)
        lat = []
        for i in range(presses):
            if i % 2 == 0:
                lat.append(await press_until(app, "question_mark", lambda: isinstance(app.screen, HelpScreen)))
            else:
                lat.append(await press_until(app, "escape", lambda: isinstance(app.screen, DashboardScreen)))
            await asyncio.sleep(rnd.uniform(0.01, 0.08))
        report("dashboard visible (charts live): ? opens help, escape closes", lat)
        draws = sum(c.draws for c in app.screen.query("Curves"))
        print(f"    the run kept training: {len(handle.steps)} step windows read (was {steps_a}); chart draws {draws}")
        handle.stop()
        while handle.running:
            await pilot.pause(0.05)


# -- (c) throughput ----------------------------------------------------------------------------
def headless_rate(cfg) -> tuple[float, float]:
    from dlcourse_tui.engine.session import execute, prepare_run

    out = {}

    def body() -> None:
        _store, final = execute(prepare_run(cfg), [])
        out["final"] = final

    t = threading.Thread(target=body)  # a worker thread, as in the app
    t.start()
    t.join()
    f = out["final"]
    return f.step * cfg.train.batch_size / f.elapsed, f.elapsed


async def tui_rate(cfg) -> tuple[float, int, float]:
    from dlcourse_tui.tui.app import DLCApp
    from dlcourse_tui.tui.screens.dashboard import DashboardScreen

    app = DLCApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.5)  # the learner starts a run from an app that is already open
        handle = app.start_run(cfg)
        while handle.final is None or handle.running:
            await pilot.pause(0.05)
        assert isinstance(app.screen, DashboardScreen)
        draws = sum(c.draws for c in app.screen.query("Curves"))
        f = handle.final
        return f.step * cfg.train.batch_size / f.elapsed, draws, f.elapsed


def throughput(rounds: int) -> None:
    from dlcourse_tui.lessons import find_lesson

    cases = [
        ("convolutional-networks", "cnn", ["n_train=2048", "n_val=256", "epochs=5"], 0.9),
        ("mlp-backprop", "mlp", ["epochs=40"], 0.75),
    ]
    print(f"(c) trainer throughput, app (dashboard visible, charts live) vs headless, {rounds} rounds alternating ({load()}):")
    for lesson_id, model, sets, target in cases:
        lesson = find_lesson(lesson_id)
        if model not in lesson.models:
            print(f"    {lesson_id}: no model {model}; skipped")
            continue
        cfg = lesson.config(sets=sets, overrides={"model.name": model})
        headless_rate(cfg)  # warm-up: data generation caches, first-call costs
        heads, tuis, draws, seconds = [], [], 0, 0.0
        for _ in range(rounds):
            rate, seconds = headless_rate(cfg)
            heads.append(rate)
            rate, draws, _ = asyncio.run(tui_rate(cfg))
            tuis.append(rate)
        h, u = statistics.median(heads), statistics.median(tuis)
        verdict = "meets" if u / h >= target else "MISSES"
        print(f"    {lesson_id} / {model} ({' '.join(sets)}): headless {h:,.0f} ex/s, app {u:,.0f} ex/s, "
              f"ratio {u / h:.2f} ({verdict} ≥ {target}); a run trains {seconds:.1f} s headless, "
              f"chart draws per app run {draws}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presses", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma-separated: paint, keys, throughput")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"machine: {load()}; DLC_HOME {os.environ['DLC_HOME']}")
    if "paint" not in skip:
        first_paint()
    if "keys" not in skip:
        asyncio.run(key_latency(args.presses))
    if "throughput" not in skip:
        throughput(args.rounds)


if __name__ == "__main__":
    main()
