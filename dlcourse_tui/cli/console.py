"""Shared Rich consoles: stdout for results, stderr for progress and errors."""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
