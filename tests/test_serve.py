"""`dlc serve` (issue #18): the app in a browser, one app process per tab.

Without a browser: a port in use is one sentence and exit 2; textual-serve missing says how
to install it; a non-loopback --host is warned about; --max-sessions refuses the extra tab
(a plain websocket client gets the refusal in its terminal, the page says the course is
full, and no process starts), and the serve process never loads torch.

In a real headless Chromium driven through chromedriver's WebDriver protocol (plain HTTP,
no client library): open the page, see the lesson browser, press the keys that start a tiny
run in the picker, see the dashboard finish it with its picture in half blocks, close the
tab, and see the app process end, the run in `dlc runs list` and the picker's knobs in the
lesson's progress file. The screen is read through the page: the xterm.js terminal's
buffer, whose object a script added before the page's own takes as textual.js creates it.
Screenshots are kept in $DLC_TEST_ARTIFACTS (else the test's tmp folder).

The helpers here (Served, Browser) are also what bench/bench_serve_latency.py drives.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HAS_SERVE = importlib.util.find_spec("textual_serve") is not None
needs_serve = pytest.mark.skipif(not HAS_SERVE, reason="textual-serve is not installed (pip install -e '.[dev]' brings it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """Pids of the live processes whose parent is `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":  # fields: state, ppid, ...
            out.append(int(stat.parent.name))
    return out


def wait_until(predicate, timeout: float, what: str, period: float = 0.1):  # noqa: ANN001, ANN201
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout` s."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(period)


class Served:
    """`dlc serve` on a free loopback port, in its own process (this environment, so this DLC_HOME)."""

    def __init__(self, *args: str, wait: bool = True) -> None:
        self.wait = wait  # False: entering does not wait for it to listen (call listening() later)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        # a browser's terminal has colour: without NO_COLOR (tests set it) pictures are colour half blocks
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        self.proc = subprocess.Popen([sys.executable, "-m", "dlcourse_tui.cli", "serve", "--port", str(self.port), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

    def __enter__(self) -> Served:
        if self.wait:
            self.listening()
        return self

    def listening(self) -> None:
        """Return once it listens; fail if it ended instead."""
        def up() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"dlc serve ended with {self.proc.returncode}: {self.proc.stdout.read()}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(up, 30, "dlc serve to listen")

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.proc.terminate()  # SIGTERM: textual-serve's graceful exit, which quits its apps
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def apps(self) -> list[int]:
        """Pids of the app processes it runs now."""
        return children(self.proc.pid)

    def loaded(self, library: str) -> bool:
        """Whether the serve process has mapped a shared library whose name contains `library`."""
        return library in Path(f"/proc/{self.proc.pid}/maps").read_text()

    def get(self, path: str = "/") -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


# -- the browser ------------------------------------------------------------------------------
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
CHROMEDRIVER = shutil.which("chromedriver")

# Run before the page's scripts: textual.js keeps its xterm.js Terminal as `this.terminal`
# of an object of its own; a setter on Object.prototype sees that assignment, makes it an
# ordinary property again, and keeps the terminal where the test can read its buffer.
HOOK = """
Object.defineProperty(Object.prototype, "terminal", {configurable: true, set(value) {
  Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
  if (value && value.buffer && value.onRender) window.__dlcTerm = value;
}});
"""
SCREEN_JS = """
const t = window.__dlcTerm;
if (!t) return null;
const b = t.buffer.active, rows = [];
for (let y = 0; y < t.rows; y++) { const line = b.getLine(b.viewportY + y); rows.push(line ? line.translateToString(true) : ""); }
return rows.join("\\n");
"""
# (text, background colour) of each row's first cell after its first word and its padding:
# in the picker, the knob whose value field has the keyboard focus is the one shown selected.
FIELDS_JS = """
const t = window.__dlcTerm, b = t.buffer.active, out = [];
for (let y = 0; y < t.rows; y++) {
  const line = b.getLine(b.viewportY + y), text = line.translateToString(true), m = text.match(/^ (\\S+) {2,}/);
  const cell = m && line.getCell(m[0].length);
  if (cell) out.push([m[1], cell.getBgColorMode() + ":" + cell.getBgColor()]);
}
return out;
"""
TAB, CTRL, RELEASE = "\ue004", "\ue009", "\ue000"  # WebDriver's keys: Tab, Control (held until RELEASE)
MODIFIERS = {"\ue008", "\ue009", "\ue00a", "\ue03d"}  # Shift, Control, Alt, Meta


class Browser:
    """A headless Chromium through chromedriver, spoken to in WebDriver's JSON over HTTP."""

    def __init__(self, profile: Path, window: str = "1280x800") -> None:
        self.port = free_port()
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.session = ""

        def ready() -> bool:
            try:
                return bool(self.call("GET", "/status")["ready"])
            except (OSError, RuntimeError):
                return False

        wait_until(ready, 30, "chromedriver to start")
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={window.replace('x', ',')}",
                "--disable-crash-reporter", "--disable-breakpad", "--no-first-run", f"--user-data-dir={profile}"]
        caps = {"browserName": "chrome", "pageLoadStrategy": "eager", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}
        self.session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
        self.scripts: list[str] = []
        self.add_script(HOOK)

    def add_script(self, js: str) -> None:
        """Run `js` before the page's own scripts in every document this tab (and a new_tab) loads."""
        self.scripts.append(js)
        self.do("POST", "/goog/cdp/execute", {"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": js}})

    def call(self, method: str, path: str, body: dict | None = None):  # noqa: ANN201 - the reply's value
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"WebDriver {method} {path}: {e.read().decode()[:300]}") from None

    def do(self, method: str, path: str, body: dict | None = None):  # noqa: ANN201
        return self.call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self.do("POST", "/url", {"url": url})

    def script(self, js: str, *args):  # noqa: ANN002, ANN201
        return self.do("POST", "/execute/sync", {"script": js, "args": list(args)})

    def screen(self) -> str:
        """The terminal's text, one line per row ('' before the page made its terminal)."""
        return self.script(SCREEN_JS) or ""

    def wait_screen(self, predicate, timeout: float, what: str) -> str:  # noqa: ANN001
        """The screen once `predicate(screen)` holds; on timeout, fail showing the screen."""
        end = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > end:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; the page shows:\n{text}")
            time.sleep(0.1)

    def focused_field(self, names: set[str]) -> str | None:
        """Of the rows named `names`, the one whose field is drawn unlike the others' (focused)."""
        rows = [(name, bg) for name, bg in self.script(FIELDS_JS) if name in names]
        odd = [name for name, bg in rows if sum(other == bg for _, other in rows) == 1]
        return odd[0] if len(rows) > 2 and len(odd) == 1 else None

    def keys(self, text: str) -> None:
        """Type `text` into the terminal: its xterm helper textarea gets the focus, then the keys go
        as WebDriver key actions (Chromium 150 calls that 1-pixel textarea not interactable, so
        sending keys to the element itself is refused). A modifier (CTRL) stays down until RELEASE."""
        self.script("const t = document.querySelector('.xterm-helper-textarea'); if (t) t.focus();")
        actions, held = [], []
        for key in text:
            if key == RELEASE:
                actions += [{"type": "keyUp", "value": k} for k in reversed(held)]
                held = []
            elif key in MODIFIERS:
                actions.append({"type": "keyDown", "value": key})
                held.append(key)
            else:
                actions += [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]
        actions += [{"type": "keyUp", "value": k} for k in reversed(held)]
        self.do("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})
        self.do("DELETE", "/actions")  # release everything, as element/value did at its end

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.do("GET", "/screenshot")))

    def new_tab(self, *, close_old: bool) -> None:
        """Go on in a new blank tab (with this browser's scripts); with close_old, close the old one."""
        old = self.do("GET", "/window")
        new = self.do("POST", "/window/new", {"type": "tab"})["handle"]
        if close_old:
            self.do("POST", "/window", {"handle": old})
            self.do("DELETE", "/window")
        self.do("POST", "/window", {"handle": new})
        for js in self.scripts:  # CDP's scripts are the old tab's
            self.do("POST", "/goog/cdp/execute", {"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": js}})

    def close_tab(self) -> None:
        """Close this tab, leaving a blank one open (the browser goes on)."""
        self.new_tab(close_old=True)

    def quit(self) -> None:
        try:
            if self.session:
                self.do("DELETE", "")
        except (OSError, RuntimeError):
            pass
        self.driver.terminate()
        self.driver.wait(timeout=20)


def artifacts(tmp_path: Path) -> Path:
    return Path(os.environ["DLC_TEST_ARTIFACTS"]) if os.environ.get("DLC_TEST_ARTIFACTS") else tmp_path / "screenshots"


# -- without a browser ------------------------------------------------------------------------
def test_serve_help_imports_neither_torch_nor_the_web_server() -> None:
    from helpers import dlc_in_a_new_interpreter

    code, out, imported = dlc_in_a_new_interpreter("serve", "--help", watch=("torch", "textual", "textual_serve", "aiohttp"))
    assert code == 0 and imported == []
    assert "--max-sessions" in out and "pip install 'dlc[serve]'" in out


@needs_serve
def test_a_port_in_use_is_one_sentence_and_exit_2(dlc) -> None:  # noqa: ANN001
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = dlc("serve", "--port", str(port))
    assert r.code == 2
    assert r.err == (f"dlc: port {port} on 127.0.0.1 is already in use; pick another with --port, "
                     "or stop what is listening there.\n")


def test_without_textual_serve_it_says_how_to_install_it(dlc, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, "textual_serve", None)  # an import of it raises ImportError
    r = dlc("serve")
    assert r.code == 2
    assert r.err == ("dlc: dlc serve needs textual-serve, which is not installed; install it with: "
                     "pip install 'dlc[serve]' (or pip install textual-serve).\n")


@needs_serve
def test_only_a_non_loopback_host_is_warned_about(dlc, monkeypatch: pytest.MonkeyPatch, dlc_home: Path) -> None:  # noqa: ANN001
    from dlcourse_tui.cli import serve, serve_gate

    served = []
    monkeypatch.setattr(serve_gate.GatedServer, "serve", lambda self: served.append((self.host, self.max_sessions, self.home)))
    port = free_port()
    quiet = dlc("serve", "--port", str(port))
    loud = dlc("serve", "--host", "0.0.0.0", "--port", str(port), "--max-sessions", "3")
    assert quiet.code == loud.code == 0 and quiet.err == ""
    assert loud.err.startswith(f"dlc serve: warning: listening on 0.0.0.0:{port}, so anyone who can reach this port gets the app")
    assert "can start training runs on this machine" in loud.err
    assert served == [("127.0.0.1", 20, dlc_home.resolve()), ("0.0.0.0", 3, dlc_home.resolve())]
    for loopback in ("localhost", "::1", "127.0.1.1"):
        assert serve.exposure_warning(loopback, port) is None, loopback
    assert serve.exposure_warning("192.168.1.20", port) and serve.exposure_warning("lab-server.local", port)


@needs_serve
def test_max_sessions_refuses_the_extra_tab_without_a_process() -> None:
    import asyncio

    import aiohttp

    from dlcourse_tui.cli.serve_gate import full_sentence

    async def session(served: Served) -> None:
        async with aiohttp.ClientSession() as http:
            first = await http.ws_connect(served.url + "ws?width=80&height=24")
            painted = 0
            while painted < 2000:  # the app's first frames
                msg = await first.receive(timeout=60)
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                painted += len(msg.data)
            apps = served.apps()
            assert len(apps) == 1, apps
            assert "dlcourse_tui.cli" in Path(f"/proc/{apps[0]}/cmdline").read_text()

            extra = await http.ws_connect(served.url + "ws?width=80&height=24")
            msg = await extra.receive(timeout=30)
            assert msg.type == aiohttp.WSMsgType.BINARY
            assert full_sentence(1) in msg.data.decode()
            await asyncio.sleep(0.5)
            assert served.apps() == apps  # no new process for the refused tab
            async with http.get(served.url) as page:
                assert page.status == 503 and full_sentence(1) in await page.text()
            await extra.close()
            await first.close()

    with Served("--max-sessions", "1") as served:
        asyncio.run(session(served))
        wait_until(lambda: not served.apps(), 30, "the app process to end once its websocket closed")
        wait_until(lambda: served.get("/")[0] == 200, 30, "the page to be served again")  # room again
        assert not served.loaded("libtorch")  # the serve process itself never imports torch


# -- in a real browser ------------------------------------------------------------------------
@needs_serve
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver; .ci/run installs them)")
def test_the_course_in_a_headless_chromium(tmp_path: Path, dlc_home: Path, dlc) -> None:  # noqa: ANN001
    shots = artifacts(tmp_path)
    with Served(wait=False) as served:
        browser = Browser(tmp_path / "chromium-profile")  # while the server starts
        try:
            served.listening()
            browser.open(served.url)
            browser.wait_screen(lambda s: "Foundations" in s and "Linear classifier — r run · m models & knobs" in s, 60,
                                "the lesson browser")
            browser.screenshot(shots / "1-lesson-browser.png")
            assert len(served.apps()) == 1

            browser.keys("m")  # the picker: models and knobs
            browser.wait_screen(lambda s: "pick a model and turn the knobs" in s, 60, "the picker")
            knobs = {"lr", "batch_size", "epochs", "optimizer", "momentum", "weight_decay", "data.name", "n_train"}
            # tab from the model list past the variant, lr and batch_size to epochs, then on to n_train;
            # a value is typed once its field shows the focus, as a learner would look before typing
            for tabs, knob, value in ((4, "epochs", "1"), (5, "n_train", "100")):
                browser.keys(TAB * tabs)
                wait_until(lambda: browser.focused_field(knobs) == knob, 30, f"the focus on {knob}")  # noqa: B023
                browser.keys(value)
                browser.wait_screen(lambda s: re.search(rf"\n {knob} +{value} ", s), 30, f"{knob} {value}")  # noqa: B023
            browser.screenshot(shots / "2-picker.png")
            browser.keys(CTRL + "s" + RELEASE)  # ctrl+s: start
            browser.wait_screen(lambda s: "linear on shapes" in s and "preparing" not in s.split("\n")[1], 60,
                                "the dashboard to show the run going")
            # the run completes, and its picture (the class templates) is drawn in half blocks
            browser.wait_screen(lambda s: "completed  epoch 1/1  step 2/2" in s and "▀" in s, 60, "the run to complete")
            browser.screenshot(shots / "3-dashboard.png")

            browser.close_tab()
            wait_until(lambda: not served.apps(), 30, "the app process to end after its tab closed")
        finally:
            browser.quit()
    listed = dlc("runs", "list")
    assert listed.code == 0
    assert re.search(r"\d{8}-\d{6}-linear-classifier-linear +shapes +completed", listed.out), listed.out
    progress = json.loads((dlc_home / "progress" / "linear-classifier.json").read_text())
    assert progress["app"]["knobs"]["train.epochs"] == 1 and progress["app"]["knobs"]["data.n_train"] == 100
