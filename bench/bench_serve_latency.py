"""How the app feels in a browser (`dlc serve`), next to the terminal: page open to the
lesson browser visible, and key-to-screen latency while a run trains.

    python bench/bench_serve_latency.py [--opens 5] [--presses 50] [--window 1280x800]
                                        [--no-terminal] [--shots bench/out/serve]

Drives Debian's headless Chromium through chromedriver (the helpers of tests/test_serve.py:
WebDriver as plain HTTP, the page's xterm.js terminal read from its buffer), against
`dlc serve` on a free loopback port with its own DLC_HOME. Times are taken in the page,
on its clock (performance.now()):

(a) page open: from the page's navigation start to the first frame the terminal draws
    with the lesson browser on it (the course tree and the first lesson's summary), for
    `--opens` fresh page loads (each one a new app process, as a new tab is).
(b) key-to-screen: from the key's keydown in the page to the first frame the terminal
    draws showing what the key did: the key goes over the websocket to the app process,
    which draws and sends the frame back. While mlp-backprop trains (picked in the
    picker, epochs=2000, so it outlasts the presses): first down/up in the lesson tree
    with the run behind, then ? / escape opening and closing help over the live
    dashboard, `--presses` each, p50/p95/max.

Then, unless --no-terminal, bench/bench_tui_latency.py --presses N --skip throughput runs
the same machine's terminal figures (first paint; the same key cases, headless driver).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ["DLC_HOME"] = os.environ.get("DLC_BENCH_HOME") or tempfile.mkdtemp(prefix="dlc-bench-serve-")
sys.path.insert(0, str(ROOT / "tests"))

import test_serve as ts  # noqa: E402 - Served, Browser: the browser test's own helpers

# After the page made its terminal: record when a drawn frame first shows the lesson
# browser, and time presses (armed from Python) from keydown to the frame that shows them.
MARKS_JS = """
(() => {
  const text = (t) => { const b = t.buffer.active, rows = [];
    for (let y = 0; y < t.rows; y++) { const l = b.getLine(b.viewportY + y); rows.push(l ? l.translateToString(true) : ""); }
    return rows.join("\\n"); };
  window.__marks = {}; window.__press = null;
  const iv = setInterval(() => {
    const t = window.__dlcTerm;
    if (!t || !t.element) return;
    clearInterval(iv);
    t.element.querySelector(".xterm-helper-textarea").addEventListener("keydown", (e) => {
      const p = window.__press; if (p && p.t0 === null) p.t0 = e.timeStamp; }, true);
    t.onRender(() => {
      const m = window.__marks, p = window.__press;
      if (m.browser === undefined) {
        const s = text(t);
        if (m.first === undefined && s.trim()) m.first = performance.now();
        if (s.includes("Foundations") && s.includes("r run · m models & knobs")) m.browser = performance.now();
      }
      if (p && p.t0 !== null && p.t1 === null && text(t).includes(p.text) === p.present) p.t1 = performance.now();
    });
  }, 2);
})();
"""
DOWN, UP, ESC = "\ue015", "\ue013", "\ue00c"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def report(name: str, ms: list[float]) -> None:
    print(f"    {name}: n={len(ms)}  p50 {pct(ms, 0.5):.1f} ms  p95 {pct(ms, 0.95):.1f} ms  max {max(ms):.1f} ms")


def press(browser: ts.Browser, key: str, text: str, present: bool) -> float:
    """Milliseconds from `key`'s keydown to the first frame where `text` is (or is not) on screen."""
    browser.script("window.__press = {text: arguments[0], present: arguments[1], t0: null, t1: null};", text, present)
    browser.keys(key)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        p = browser.script("return window.__press;")
        if p["t1"] is not None and p["t0"] is not None:
            return p["t1"] - p["t0"]
        time.sleep(0.01)
    raise SystemExit(f"the key {key!r} never showed {text!r}; the page shows:\n{browser.screen()}")


def page_open(browser: ts.Browser, served: ts.Served, opens: int) -> None:
    firsts, shown = [], []
    for i in range(opens):
        if i:  # a new tab for each page load; the last one's app ends first
            browser.close_tab()
            ts.wait_until(lambda: not served.apps(), 60, "the last app process to end")
        browser.open(served.url)
        marks = ts.wait_until(lambda: (m := browser.script("return window.__marks || {};")) and "browser" in m and m,  # noqa: B023
                              120, "the lesson browser")
        firsts.append(marks["first"])
        shown.append(marks["browser"])
    ms = lambda xs: f"median {statistics.median(xs):.0f} ms (min {min(xs):.0f}, max {max(xs):.0f})"  # noqa: E731
    print(f"(a) page open to the lesson browser drawn in the page: {ms(shown)}, {opens} page loads, each in a new tab "
          f"({load()})")
    print(f"    the terminal's first drawn frame: {ms(firsts)}")


def start_long_run(browser: ts.Browser) -> None:
    """From the lesson browser: mlp-backprop in the picker with epochs=2000, started."""
    browser.keys(DOWN + DOWN)
    browser.wait_screen(lambda s: "MLP and backpropagation — r run" in s, 60, "the MLP lesson")
    browser.keys("m")
    browser.wait_screen(lambda s: "pick a model and turn the knobs" in s, 60, "the picker")
    knobs = {"hidden", "activation", "lr", "epochs", "optimizer", "data.name", "n_train"}
    for _ in range(12):
        if browser.focused_field(knobs) == "epochs":
            break
        browser.keys(ts.TAB)
        time.sleep(0.4)
    ts.wait_until(lambda: browser.focused_field(knobs) == "epochs", 30, "the focus on epochs")
    browser.keys("2000")
    browser.wait_screen(lambda s: "\n epochs" in s and " 2000 " in s, 30, "epochs 2000")
    browser.keys(ts.CTRL + "s" + ts.RELEASE)
    browser.wait_screen(lambda s: "training  epoch" in s, 120, "the run training")


def key_latency(browser: ts.Browser, presses: int) -> None:
    rnd = random.Random(0)
    start_long_run(browser)
    print(f"(b) key-to-screen in the page, while mlp-backprop trains ({load()}):")
    browser.keys(ESC)  # back to the lesson browser, the run going on behind
    browser.wait_screen(lambda s: "Foundations" in s, 30, "the lesson browser")
    browser.keys(UP + UP)
    browser.wait_screen(lambda s: "Linear classifier — r run" in s, 30, "the first lesson")
    time.sleep(0.5)
    lat = []
    for i in range(presses):
        key, title = (DOWN, "A single neuron") if i % 2 == 0 else (UP, "Linear classifier")
        lat.append(press(browser, key, f"{title} — r run", True))
        time.sleep(rnd.uniform(0.01, 0.08))
    report("browser tree cursor, run training behind", lat)
    browser.keys("D")
    browser.wait_screen(lambda s: "training  epoch" in s, 30, "the dashboard")
    time.sleep(0.6)
    lat = []
    for i in range(presses):
        lat.append(press(browser, "?" if i % 2 == 0 else ESC, "Keys: ", i % 2 == 0))
        time.sleep(rnd.uniform(0.01, 0.08))
    report("dashboard visible (charts live): ? opens help, escape closes", lat)
    status = next((line for line in browser.screen().splitlines() if "epoch" in line), "")
    print(f"    the run kept training: {status.strip()}")
    browser.keys("s")  # stop it (a checkpoint is written)
    browser.wait_screen(lambda s: "stopped" in s, 60, "the run to stop")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--opens", type=int, default=5)
    ap.add_argument("--presses", type=int, default=50)
    ap.add_argument("--window", default="1280x800", help="browser window, WIDTHxHEIGHT pixels (1280x800: 142x36 cells; 730x540: 80x24)")
    ap.add_argument("--no-terminal", action="store_true", help="skip the terminal figures (bench_tui_latency.py)")
    ap.add_argument("--shots", default=str(ROOT / "bench" / "out" / "serve"), help="folder for screenshots")
    args = ap.parse_args()
    if not (ts.HAS_SERVE and ts.CHROMIUM and ts.CHROMEDRIVER):
        raise SystemExit("needs textual-serve, chromium and chromedriver (apt-get install chromium chromium-driver)")
    print(f"dlc serve in headless Chromium, window {args.window}, DLC_HOME {os.environ['DLC_HOME']}")
    shots = Path(args.shots)
    with ts.Served() as served, tempfile.TemporaryDirectory() as profile:
        browser = ts.Browser(Path(profile), window=args.window)
        try:
            browser.add_script(MARKS_JS)
            page_open(browser, served, args.opens)
            cols, rows = browser.script("return [window.__dlcTerm.cols, window.__dlcTerm.rows];")
            print(f"    the page's terminal: {cols}x{rows} cells")
            browser.screenshot(shots / "lesson-browser.png")
            key_latency(browser, args.presses)
            browser.screenshot(shots / "dashboard.png")
        finally:
            browser.quit()
    print(f"screenshots: {shots}")
    if not args.no_terminal:
        print("\nthe terminal, on the same machine (bench/bench_tui_latency.py):", flush=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "bench_tui_latency.py"), "--presses", str(args.presses),
                        "--skip", "throughput"], check=False)


if __name__ == "__main__":
    main()
