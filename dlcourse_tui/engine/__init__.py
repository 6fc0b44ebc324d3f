"""The training engine: knows nothing of Textual or Typer; reports through events."""
