"""The `dlc` script's entry point. A help screen asked for again is printed from a cache,
without importing Typer and Rich; everything else goes to cli.app.

Typer and Rich take most of a `--help`: on a slow 2-core machine 361 ms at the median, of
which Python itself is a tenth. The help a command prints depends only on the code of
cli/, the arguments, and the terminal it prints to, so the bytes printed once are kept
under a key made of those (the version, each cli/*.py file's size and mtime, the
program's name and arguments, the width, whether it is a terminal, and the colour
settings) and printed
as they were. A miss, or any trouble with the cache, takes the normal path.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

HELP_FLAGS = ("--help", "-h")
_ENV = ("TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")


def main() -> None:
    """`dlc ARGS`: a cached help screen if there is one, else the Typer app."""
    args = sys.argv[1:]
    path = _cache_path(args) if args and args[-1] in HELP_FLAGS else None
    if path is not None:
        try:
            text = path.read_bytes()
        except OSError:
            text = None
        if text is not None:
            sys.stdout.buffer.write(text)
            sys.stdout.flush()
            return
    from dlcourse_tui.cli.app import main as app_main

    if path is None:
        app_main()
        return
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        app_main()
    except SystemExit as e:
        if e.code in (0, None):
            _store(path, tee.written.getvalue().encode(tee.encoding or "utf-8", "replace"))
        raise
    finally:
        sys.stdout = tee.target


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/dlc, else ~/.cache/dlc."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlc"


def _cache_path(args: list[str]) -> Path | None:
    """Where the help of `args`, printed to this terminal, is kept; None if it cannot be keyed."""
    from dlcourse_tui import __version__

    here = Path(__file__).resolve().parent
    key = hashlib.sha256()
    try:
        for source in sorted(here.glob("*.py")):
            st = source.stat()
            key.update(f"{source.name}:{st.st_size}:{st.st_mtime_ns};".encode())
        size = os.get_terminal_size(sys.stdout.fileno()) if sys.stdout.isatty() else None
    except (OSError, ValueError):
        return None
    key.update(repr((__version__, sys.version_info[:2], Path(sys.argv[0]).name, args, sys.stdout.isatty(), tuple(size or ()),
                     [os.environ.get(name) for name in _ENV])).encode())
    return cache_dir() / "help" / f"{key.hexdigest()[:24]}.txt"


def _store(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically; a cache that cannot be written is no cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        pass


class _Tee:
    """sys.stdout for one help screen: writes go to the real stream and are kept; the
    terminal questions Rich asks (isatty, fileno, encoding) get the real stream's answers."""

    def __init__(self, target) -> None:  # noqa: ANN001 - a text stream
        import io

        self.target = target
        self.written = io.StringIO()

    def write(self, text: str) -> int:
        self.written.write(text)
        return self.target.write(text)

    def __getattr__(self, name: str):  # noqa: ANN204 - isatty, fileno, flush, encoding, ...
        return getattr(self.target, name)
