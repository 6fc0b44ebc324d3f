"""The `dlc` command line (Typer). Modules here import torch only inside commands."""

from dlcourse_tui.cli.app import app, main

__all__ = ["app", "main"]
