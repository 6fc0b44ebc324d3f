"""`dlc doctor`: what this machine offers a run (Python, torch, devices, terminal)."""

from __future__ import annotations

import os
import sys

import typer


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def _version(pkg: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "[red]not installed[/]"


def doctor() -> None:
    """Check Python, torch, torchvision, devices, the terminal and where runs are stored."""
    import platform
    import shutil

    from rich.markup import escape
    from rich.table import Table

    from dlcourse_tui.cli.console import out
    from dlcourse_tui.engine.runs import dlc_home
    from dlcourse_tui.lessons import REPORTED, broken_lessons, load_lessons

    table = Table(title="dlc doctor", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("found")
    table.add_row("python", f"{sys.version.split()[0]} ({platform.platform()})")
    for pkg in ("torch", "torchvision", "textual", "rich", "typer"):
        table.add_row(pkg, _version(pkg))
    try:
        import torch

        from dlcourse_tui.engine.devices import describe_devices

        table.add_row("torch build", f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only")
        for name, desc in describe_devices():
            table.add_row(f"device {name}", desc)
    except Exception as e:  # noqa: BLE001 - report, do not crash
        table.add_row("torch", f"[red]cannot import: {e}[/]")
    size = shutil.get_terminal_size()
    table.add_row("terminal", f"{size.columns}×{size.lines}, TERM={os.environ.get('TERM', '?')}"
                  + (" (smaller than 80×24)" if size.columns < 80 or size.lines < 24 else ""))
    table.add_row("colour", f"{out.color_system or 'none'}" + (" (NO_COLOR set)" if os.environ.get("NO_COLOR") else ""))
    home = dlc_home()
    writable = os.access(home if home.exists() else home.parent if home.parent.exists() else "/", os.W_OK)
    table.add_row("runs", f"{home / 'runs'}" + ("" if writable else " [red](not writable)[/]"))
    broken = broken_lessons()
    table.add_row("lessons", f"{len(load_lessons())} found" + (f", [red]{len(broken)} broken[/] (skipped)" if broken else ""))
    for bad in broken:
        table.add_row("", escape(bad.message))
        REPORTED.add(bad.folder)
    out.print(table)
