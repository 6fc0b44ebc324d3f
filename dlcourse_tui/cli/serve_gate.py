"""The web server behind `dlc serve`: textual-serve's Server with a gate on the number of
app processes, and page addresses taken from the request.

textual-serve (1.1) serves one page (`/`) holding an xterm.js terminal; the page opens a
websocket (`/ws`), and `Server.handle_websocket` starts one app process for it (an
`AppService`: the command run through the shell with Textual's web driver) and ends that
process when the websocket closes. So the gate sits around that handler: a websocket
beyond `max_sessions` gets the refusal written into its terminal and no process, and the
page itself, asked for while every session is taken, is a short HTML page saying so.

textual-serve builds the page's websocket address from the address it listens on, which
for `--host 0.0.0.0` is no address a browser can reach; here it is the one the browser
used (the request's Host header).

Imports aiohttp and textual-serve: only `dlc serve` imports this module, and never torch.
"""

from __future__ import annotations

import asyncio
import html
import logging
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server, to_int

log = logging.getLogger("textual-serve")

REFUSED_OPEN_S = 60.0  # how long a refused websocket stays open so its tab can show why
CLOSE_TRY_AGAIN_LATER = 1013  # the websocket close code for "try again later"


def app_command() -> str:
    """The shell command of one app process: `dlc` without arguments, as this Python runs it."""
    return "exec " + shlex.join([sys.executable, "-m", "dlcourse_tui.cli"])


def full_sentence(limit: int) -> str:
    """What a tab beyond the limit is told."""
    return (f"The course is full: {limit} of {limit} browser sessions are open on this machine. "
            "Close another dlc tab, or ask whoever started dlc serve for a larger --max-sessions, then reload this page.")


FULL_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dlc: the course is full</title>
<style>body {{ background: #0c181f; color: #e8eef2; font: 18px/1.5 monospace; margin: 15vh auto; max-width: 40em; }}</style>
</head><body><h1>dlc</h1><p id="full">{sentence}</p></body></html>
"""


class GatedServer(Server):
    """textual-serve's Server: at most `max_sessions` app processes at once."""

    def __init__(self, *, host: str, port: int, max_sessions: int, home: Path, title: str = "dlc") -> None:
        super().__init__(app_command(), host=host, port=port, title=title)
        self.max_sessions = max_sessions
        self.home = home  # the data folder the app processes share (runs, progress)
        self.sessions = 0  # websockets holding an app process, from its start until it ended

    @property
    def full(self) -> bool:
        return self.sessions >= self.max_sessions

    async def on_startup(self, app: web.Application) -> None:
        """Say where the app is served, to whom, and where its runs go (instead of the logo)."""
        url = self.public_url
        if self.host in ("0.0.0.0", "::", ""):  # every address: learners use this machine's name
            url = f"http://{socket.gethostname()}:{self.port}"
        print_ = lambda text: self.console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
        print_(f"dlc serve: open [b]{url}[/] in a browser; each tab gets its own app, at most {self.max_sessions} at once.")
        print_(f"Runs and progress go to {self.home}, as for `dlc` and `dlc runs list` here.")
        print_("Ctrl+C stops the server and every app it started.")

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        """The terminal page, its addresses taken from the request; a short page when full."""
        if self.full:
            return self._full_page()
        origin = f"{request.scheme}://{request.host}"
        context: dict[str, Any] = {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{'wss' if request.secure else 'ws'}://{request.host}/ws",
            "config": {"static": {"url": f"{origin}/static/"}},
            "application": {"name": self.title},
        }
        return aiohttp_jinja2.render_template("app_index.html", request, context)

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        """One app process for this websocket (textual-serve's handler), or the refusal when full."""
        if self.full:
            return await self._refuse(request)
        self.sessions += 1
        log.info("browser session opened (%d of %d in use)", self.sessions, self.max_sessions)
        try:
            return await super().handle_websocket(request)
        finally:  # textual-serve returns once the app process has ended
            self.sessions -= 1
            log.info("browser session closed (%d of %d in use)", self.sessions, self.max_sessions)

    def _full_page(self) -> web.Response:
        log.warning("refused a browser page: %d of %d sessions in use (--max-sessions)", self.sessions, self.max_sessions)
        return web.Response(status=503, content_type="text/html", headers={"Retry-After": "30"},
                            text=FULL_PAGE.format(sentence=html.escape(full_sentence(self.max_sessions))))

    async def _refuse(self, request: web.Request) -> web.WebSocketResponse:
        """Write the refusal into the tab's terminal, start nothing, and close (after a while,
        so the tab shows the sentence rather than textual-serve's 'Session ended')."""
        log.warning("refused a browser session: %d of %d in use (--max-sessions)", self.sessions, self.max_sessions)
        websocket = web.WebSocketResponse(heartbeat=15)
        await websocket.prepare(request)
        # clear the screen, home the cursor, hide it; then the sentence
        await websocket.send_bytes(b"\x1b[2J\x1b[H\x1b[?25l\r\n  " + full_sentence(self.max_sessions).encode() + b"\r\n")
        try:
            async with asyncio.timeout(REFUSED_OPEN_S):
                async for _ in websocket:  # keys and resizes from a refused tab go nowhere
                    pass
        except TimeoutError:
            pass
        await websocket.close(code=CLOSE_TRY_AGAIN_LATER, message=b"the course is full")
        return websocket
