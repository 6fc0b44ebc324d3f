"""`dlc serve`: the app in a browser, for a classroom on one machine.

textual-serve (the optional extra: pip install 'dlc[serve]') serves a page with a terminal;
each browser tab that opens it gets its own app process, `dlc` without arguments run by
this Python with this DLC_HOME, so a run started in a tab is in `dlc runs list` here and
the other way round, and a walkthrough's progress (kept in the data folder) survives a
closed tab. Pictures are half blocks, the only image mode the app has (render/halfblock.py),
which is also the only one textual-serve's terminal draws.

Loopback by default; another --host is asked for explicitly and answered with a warning.
The serve process itself imports neither torch nor Textual: only the app processes do.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys

import typer

from dlcourse_tui.errors import UserError

DEFAULT_MAX_SESSIONS = 20


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on: 127.0.0.1 is this machine only; "
                             "0.0.0.0 lets anyone on its networks in (a warning says what that gives them)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    max_sessions: int = typer.Option(DEFAULT_MAX_SESSIONS, "--max-sessions", min=1,
                                     help="At most this many app processes (browser tabs) at once; a tab beyond "
                                     "it gets a page saying the course is full."),
) -> None:
    """Serve the app to browsers: each tab gets its own app; runs and progress are shared with `dlc` here.

    Needs the serve extra: pip install 'dlc\\[serve]'. Ctrl+C stops it.
    """
    try:
        import textual_serve  # noqa: F401
    except ImportError:
        raise UserError("dlc serve needs textual-serve, which is not installed; "
                        "install it with: pip install 'dlc[serve]' (or pip install textual-serve).") from None
    check_port(host, port)
    warning = exposure_warning(host, port)
    if warning:
        print(f"dlc serve: warning: {warning}", file=sys.stderr)
    from dlcourse_tui.engine.runs import dlc_home

    home = dlc_home().resolve()
    os.environ["DLC_HOME"] = str(home)  # the app processes inherit it: every tab writes where `dlc` reads
    from dlcourse_tui.cli.serve_gate import GatedServer

    GatedServer(host=host, port=port, max_sessions=max_sessions, home=home).serve()


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback addresses (127.0.0.0/8, ::1); a name is not trusted to be one."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int) -> str | None:
    """The warning a non-loopback --host gets, or None."""
    if is_loopback(host):
        return None
    return (f"listening on {host}:{port}, so anyone who can reach this port gets the app (no shell, but a real app) "
            f"and can start training runs on this machine as you; keep it to a network you trust, "
            f"and bound the number of apps with --max-sessions.")


def check_port(host: str, port: int) -> None:
    """Bind (host, port) as the server will (SO_REUSEADDR, every address the host names) and
    let go: a port in use, or a host that is no address of this machine, is one sentence."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UserError(f"cannot listen on --host {host!r}: {e.strerror}; give an address of this machine, "
                        "such as 127.0.0.1 (this machine only) or 0.0.0.0 (every network it is on).") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as e:
                raise UserError(_bind_sentence(host, port, e)) from None


def _bind_sentence(host: str, port: int, e: OSError) -> str:
    if e.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is already in use; pick another with --port, "
                "or stop what is listening there.")
    if e.errno == errno.EACCES:
        return f"port {port} on {host} needs privileges this user lacks; pick a port above 1023 with --port."
    if e.errno == errno.EADDRNOTAVAIL:
        return (f"cannot listen on --host {host}: it is not an address of this machine; "
                "use 127.0.0.1 (this machine only) or 0.0.0.0 (every network it is on).")
    return f"cannot listen on {host}:{port}: {e.strerror or e}; try another --host or --port."
