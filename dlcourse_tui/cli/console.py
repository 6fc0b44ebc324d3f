"""Shared Rich consoles: stdout for results, stderr for progress and errors.

Written to a pipe or a file, text is not folded at 80 columns (one sentence, one line in
a log); tables still fit that width."""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
for _console in (out, err):
    _console.soft_wrap = not _console.is_terminal
