"""The `dlc` command line (Typer): cli.app holds the app, cli.entry the script's entry
point. Modules here import torch only inside commands, and importing this package imports
nothing else, so entry.py can answer a repeated --help before Typer is loaded."""
