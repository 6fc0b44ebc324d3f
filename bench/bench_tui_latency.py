"""How the TUI costs and feels: first paint, key-to-screen latency while training, and
trainer throughput with the dashboard attached vs headless, side by side in one run.

    python bench/bench_tui_latency.py [--presses 120] [--rounds 2] [--skip paint,keys,throughput]
                                      [--burn N] [--threads N|auto] [--cases cnn,mlp] [--no-terminal-output]
                                      [--walk]

(a) first paint: a fresh interpreter opens the app (headless driver) and prints when the
    first frame of the lesson browser went out, and the first frame with the first
    lesson's text; the times are from spawning the process, and the line says whether
    torch had been imported by then.
(b) key-to-screen: `down`/`up` move the browser's tree cursor between two lessons (each
    move shows the other lesson); each press goes through the driver like a terminal's
    keys, and is timed until the first frame that shows the cursor on its new line with
    the browser showing that lesson (a hook on the app's frame output: no polling loop
    competes with the app meanwhile). First while torch is still being imported after the start (the
    first seconds a learner spends in the app), then with the app settled and no run,
    then while mlp-backprop trains on the CPU (its dashboard below, still ticking), then
    with the dashboard on top, charts live, opening and closing the help modal. (The app
    starts importing torch once keys rest for a second; the first measurement starts
    pressing keys when that import has begun.)
    p50/p95/max over the presses.
(c) throughput: the same config trained headless (a plain thread, no listener but the
    run store) and in the app (dashboard visible, charts live), alternating, `--rounds`
    each; examples/s from the run's own final step count and elapsed time. Both sides
    train with the same number of CPU threads (the warm-up run's choice, or --threads):
    a run chooses by timing a few steps, and on a busy machine one side may choose 2 and
    the other 1. The app's UI thread CPU time per second of training is printed too (what
    the UI takes from the trainer through the GIL, less sensitive to the machine's load).

The app runs headless here, but every frame is still turned into the escape sequences a
terminal would get (as the real driver does before writing them); --no-terminal-output
skips that, as Textual's headless driver does.

--walk opens the walkthrough pane (w) before (b): each lesson the tree cursor
moves to shows its walkthrough beside its text, and the dashboard shows the run's.

--burn N runs N busy processes (one per core from the last, a pure-Python loop) during
the measurements: on this project's 2-core machine that stands in for the slower machine
of issue #10 (about 2× slower, load 0.7-0.9). Report figures with and without it.
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

TERMINAL_OUTPUT = True


def load() -> str:
    try:
        one, five, _ = os.getloadavg()
        return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"
    except OSError:
        return "load average unknown"


# -- a busy machine --------------------------------------------------------------------------
BURNER = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


def start_burners(n: int) -> list[subprocess.Popen]:
    """N busy processes, pinned to the last N cores (where the OS allows it)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    procs = []
    for i in range(n):
        core = cores[-1 - (i % len(cores))]
        procs.append(subprocess.Popen([sys.executable, "-c", BURNER, str(core)]))
    return procs


def stop_burners(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=10)


def hook_frames(app) -> list:  # noqa: ANN001
    """Call app._frame_listeners after every frame; with TERMINAL_OUTPUT, also make the
    terminal's escape sequences of the frame, as the real driver does before writing."""
    display = app._display  # noqa: SLF001
    listeners: list = []

    def _display(screen, renderable) -> None:  # noqa: ANN001
        display(screen, renderable)
        if renderable is None or app._batch_count:  # noqa: SLF001 - nothing was shown
            return
        if TERMINAL_OUTPUT and hasattr(renderable, "render_segments"):
            renderable.render_segments(app.console)
        for listener in list(listeners):
            listener()

    app._display = _display  # noqa: SLF001
    return listeners


# -- (a) first paint -----------------------------------------------------------------------
PAINT_SCRIPT = textwrap.dedent("""
    import sys, time
    from dlcourse_tui.tui.app import DLCApp

    def text_shown(screen):
        try:
            pane = screen.query_one("#lesson-scroll")
        except Exception:
            return False
        return bool(getattr(pane, "_strips", None)) or len(pane.query("MarkdownBlock")) > 0

    display = DLCApp._display
    painted = []

    def _display(self, screen, renderable):  # every frame goes out through here
        display(self, screen, renderable)
        if renderable is None or type(screen).__name__ != "BrowserScreen":
            return
        if not painted:
            painted.append(True)
            print("PAINT", time.time(), "torch" in sys.modules, type(screen).__name__, flush=True)
        if text_shown(screen):
            print("TEXT", time.time(), flush=True)
            self.exit()

    DLCApp._display = _display
    DLCApp(preload_torch=False).run(headless=True, size=(80, 24))
""")



def first_paint(repeats: int = 5) -> None:
    times, texts, torch_flags = [], [], []
    for _ in range(repeats):
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, "-c", PAINT_SCRIPT], stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline().split()
        text = proc.stdout.readline().split()
        proc.wait(timeout=60)
        if not line or line[0] != "PAINT":
            raise SystemExit("the app did not report its first paint")
        times.append(float(line[1]) - t0)
        torch_flags.append(line[2] == "True")
        assert line[3] == "BrowserScreen", line
        if text and text[0] == "TEXT":
            texts.append(float(text[1]) - t0)
    ms = lambda xs: f"median {statistics.median(xs) * 1000:.0f} ms (min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f})"  # noqa: E731
    print(f"(a) first paint of the lesson browser, from process spawn: {ms(times)}, {repeats} runs; "
          f"torch imported by then: {'yes' if any(torch_flags) else 'no'}")
    if texts:
        print(f"    the first lesson's text painted too: {ms(texts)}")


# -- (b) key-to-screen latency ---------------------------------------------------------------
def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def report(name: str, lat: list[float], cpu: float | None = None) -> None:
    ms = [x * 1000 for x in lat]
    p95, worst = pct(ms, 0.95), max(ms)
    verdict = "meets" if p95 < 50 and worst < 250 else "MISSES"
    extra = f"; UI thread CPU {cpu * 1000 / len(ms):.1f} ms a press" if cpu is not None else ""
    print(f"    {name}: n={len(ms)}  p50 {pct(ms, 0.5):.1f} ms  p95 {p95:.1f} ms  max {worst:.1f} ms "
          f"(press {ms.index(worst) + 1})  ({verdict} p95 < 50 ms, max < 250 ms){extra}")


async def press_until(app, frames: list, key: str, reflected) -> float:  # noqa: ANN001
    """Send `key` as the terminal driver does; seconds until a frame shows `reflected()` true."""
    from textual import events

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    t0 = time.perf_counter()

    def on_frame() -> None:
        if not done.done() and reflected():
            done.set_result(time.perf_counter())

    frames.append(on_frame)
    try:
        app._driver.send_message(events.Key(key, None))  # noqa: SLF001 - what a real driver does
        return (await asyncio.wait_for(done, 10)) - t0
    finally:
        frames.remove(on_frame)


def shows_lesson(app, tree, line: int):  # noqa: ANN001, ANN201
    """A test for a frame: the tree's cursor on `line` and the browser showing that lesson."""
    lesson = tree.get_node_at_line(line).data
    return lambda: tree.cursor_line == line and getattr(app.screen, "lesson", None) is lesson


async def tree_press(app, frames, tree, i: int) -> float:  # noqa: ANN001, ARG001
    """Down from the first lesson to the second, or up from the second to the first."""
    key, target = ("down", 2) if tree.cursor_line != 2 else ("up", 1)
    if tree.cursor_line not in (1, 2):
        tree.cursor_line = 1
    return await press_until(app, frames, key, shows_lesson(app, tree, target))


async def tree_presses(app, frames, tree, presses: int, rnd) -> tuple[list[float], float]:  # noqa: ANN001
    lat, c0 = [], time.thread_time()
    for i in range(presses):
        lat.append(await tree_press(app, frames, tree, i))
        await asyncio.sleep(rnd.uniform(0.01, 0.08))  # land at every phase of the app's timers
    return lat, time.thread_time() - c0


async def key_latency(presses: int, threads: int | None, walk: bool = False) -> None:
    import random

    from textual.widgets import Tree

    from dlcourse_tui.lessons import find_lesson
    from dlcourse_tui.tui.app import DLCApp
    from dlcourse_tui.tui.screens.browser import BrowserScreen
    from dlcourse_tui.tui.screens.dashboard import DashboardScreen
    from dlcourse_tui.tui.screens.help import HelpScreen

    sets = ["epochs=2000"] + ([f"threads={threads}"] if threads else [])
    cfg = find_lesson("mlp-backprop").config(sets=sets)
    app = DLCApp()
    async with app.run_test(size=(80, 24)) as pilot:
        frames = hook_frames(app)
        rnd = random.Random(0)
        tree = app.screen.query_one(Tree)
        preloading = lambda: any(w.group == "preload" and w.is_running for w in app.workers)  # noqa: E731
        while app.first_paint_s is None or app.focused is not tree:
            await asyncio.sleep(0.01)
        print(f"(b) key-to-screen latency ({load()}):")
        t_paint = time.perf_counter()
        while not preloading() and "dlcourse_tui.engine.session" not in sys.modules:
            await asyncio.sleep(0.005)  # the app imports torch once keys rest (or at once)
        lat, c0 = [], time.thread_time()
        print(f"    the torch import started {time.perf_counter() - t_paint:.2f} s after the first paint, no key pressed")
        while preloading() and len(lat) < presses:
            lat.append(await tree_press(app, frames, tree, len(lat)))
            await asyncio.sleep(rnd.uniform(0.01, 0.08))
        if len(lat) >= 2:
            report("browser tree cursor while torch is imported after the start", lat, time.thread_time() - c0)
        while preloading():
            await asyncio.sleep(0.05)
        if walk:
            await pilot.press("w")
            assert app.walks.visible, "the walkthrough pane did not open"
            tree.focus()  # the keys go on to the tree, as a learner's arrows do
            print("    with the walkthrough pane open")
        await pilot.pause(0.3)
        lat, cpu = await tree_presses(app, frames, tree, presses // 2, rnd)
        report("browser tree cursor, no run (baseline)", lat, cpu)
        handle = app.start_run(cfg)
        while len(handle.steps) < 3:
            await pilot.pause(0.05)
        # 1. browser on top, the run training behind it
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)
        tree = app.screen.query_one(Tree)
        tree.cursor_line = 1
        await pilot.pause(0.2)
        lat, cpu = await tree_presses(app, frames, tree, presses, rnd)
        steps_a = len(handle.steps)
        print(f"    while mlp-backprop trains on the CPU ({load()}; threads {handle.started.threads if handle.started else '?'}):")
        report("browser tree cursor, run training behind", lat, cpu)
        # 2. the dashboard on top, charts live: open and close the help modal
        await pilot.press("D")
        assert isinstance(app.screen, DashboardScreen)
        await pilot.pause(0.6)
        lat, c0 = [], time.thread_time()
        for i in range(presses):
            if i % 2 == 0:
                lat.append(await press_until(app, frames, "question_mark", lambda: isinstance(app.screen, HelpScreen)))
            else:
                lat.append(await press_until(app, frames, "escape", lambda: isinstance(app.screen, DashboardScreen)))
            await asyncio.sleep(rnd.uniform(0.01, 0.08))
        report("dashboard visible (charts live): ? opens help, escape closes", lat, time.thread_time() - c0)
        draws = sum(c.draws for c in app.screen.query("Curves"))
        print(f"    the run kept training: {len(handle.steps)} step windows read (was {steps_a}); chart draws {draws}")
        handle.stop()
        while handle.running:
            await pilot.pause(0.05)


# -- (c) throughput ----------------------------------------------------------------------------
def headless_rate(cfg) -> tuple[float, float, str]:  # noqa: ANN001
    from dlcourse_tui.engine.session import execute, prepare_run

    out = {}

    def body() -> None:
        started = []
        _store, final = execute(prepare_run(cfg), [lambda e: started.append(e) if type(e).__name__ == "RunStarted" else None])
        out["final"], out["threads"] = final, started[0].threads if started else ""

    t = threading.Thread(target=body)  # a worker thread, as in the app
    t.start()
    t.join()
    f = out["final"]
    return f.step * cfg.train.batch_size / f.elapsed, f.elapsed, out["threads"]


async def tui_rate(cfg) -> tuple[float, int, float, float]:  # noqa: ANN001
    """examples/s in the app, chart draws, seconds trained, UI thread CPU seconds meanwhile."""
    from dlcourse_tui.tui.app import DLCApp
    from dlcourse_tui.tui.screens.dashboard import DashboardScreen

    app = DLCApp()
    async with app.run_test(size=(120, 40)) as pilot:
        hook_frames(app)
        await pilot.pause(0.5)  # the learner starts a run from an app that is already open
        handle = app.start_run(cfg)
        while handle.started is None and handle.running:
            await asyncio.sleep(0.01)  # not pilot.pause: it sends every widget a message
        c0 = time.thread_time()
        while handle.final is None or handle.running:
            await asyncio.sleep(0.05)
        cpu = time.thread_time() - c0
        await pilot.pause(0.1)
        assert isinstance(app.screen, DashboardScreen)
        draws = sum(c.draws for c in app.screen.query("Curves"))
        f = handle.final
        return f.step * cfg.train.batch_size / f.elapsed, draws, f.elapsed, cpu


def throughput(rounds: int, threads: int | None, only: set[str]) -> None:
    from dlcourse_tui.lessons import find_lesson

    cases = [
        ("convolutional-networks", "cnn", ["n_train=2048", "n_val=256", "epochs=5"], 0.9),
        ("mlp-backprop", "mlp", ["epochs=40"], 0.75),
    ]
    print(f"(c) trainer throughput, app (dashboard visible, charts live) vs headless, {rounds} rounds alternating ({load()}):")
    for lesson_id, model, sets, target in cases:
        if only and model not in only:
            continue
        lesson = find_lesson(lesson_id)
        if model not in lesson.models:
            print(f"    {lesson_id}: no model {model}; skipped")
            continue
        cfg = lesson.config(sets=sets, overrides={"model.name": model})
        _rate, _s, chose = headless_rate(cfg)  # warm-up: data generation caches, first-call costs
        n = threads if threads else int(chose.split()[0]) if chose[:1].isdigit() else None
        if n:
            cfg = lesson.config(sets=sets + [f"threads={n}"], overrides={"model.name": model})
        heads, tuis, draws, seconds, cpus = [], [], 0, 0.0, []
        for _ in range(rounds):
            rate, seconds, _t = headless_rate(cfg)
            heads.append(rate)
            rate, draws, trained, cpu = asyncio.run(tui_rate(cfg))
            tuis.append(rate)
            cpus.append(cpu / trained)
        h, u = statistics.median(heads), statistics.median(tuis)
        verdict = "meets" if u / h >= target else "MISSES"
        print(f"    {lesson_id} / {model} ({' '.join(sets)}; {n or '?'} thread{'s' if n != 1 else ''}, "
              f"the warm-up chose {chose or '?'}): headless {h:,.0f} ex/s, app {u:,.0f} ex/s, "
              f"ratio {u / h:.2f} ({verdict} ≥ {target}); a run trains {seconds:.1f} s headless, "
              f"chart draws per app run {draws}, UI thread CPU {statistics.median(cpus) * 1000:.0f} ms per s trained")


def main() -> None:
    global TERMINAL_OUTPUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presses", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma-separated: paint, keys, throughput")
    ap.add_argument("--burn", type=int, default=0, help="busy processes run during the measurements (a slower machine)")
    ap.add_argument("--threads", default="auto", help="CPU threads of every run ('auto': the warm-up run's choice)")
    ap.add_argument("--cases", default="", help="comma-separated models of (c) to run: cnn, mlp (default both)")
    ap.add_argument("--no-terminal-output", action="store_true", help="skip making each frame's escape sequences")
    ap.add_argument("--walk", action="store_true", help="measure (b) with the walkthrough pane open")
    args = ap.parse_args()
    TERMINAL_OUTPUT = not args.no_terminal_output
    threads = None if args.threads == "auto" else int(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    print(f"machine: {load()}; DLC_HOME {os.environ['DLC_HOME']}")
    burners = start_burners(args.burn)
    if burners:
        time.sleep(1.0)
        print(f"with {len(burners)} busy process{'es' if len(burners) > 1 else ''} pinned to the last core(s) ({load()})")
    try:
        if "paint" not in skip:
            first_paint()
        if "keys" not in skip:
            asyncio.run(key_latency(args.presses, threads, args.walk))
        if "throughput" not in skip:
            throughput(args.rounds, threads, set(filter(None, args.cases.split(","))))
    finally:
        stop_burners(burners)


if __name__ == "__main__":
    main()
