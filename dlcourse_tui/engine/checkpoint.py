"""Checkpoints: written atomically, read with weights_only=True (a checkpoint cannot run code)."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from dlcourse_tui.errors import UserError

FORMAT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated or not one of ours."""


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary file beside `path`, then os.replace: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT_VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """The state saved at `path`, or CheckpointError saying why it cannot be resumed."""
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: this run saved no checkpoint, so it cannot be resumed.")
    try:
        with warnings.catch_warnings():  # a foreign file's torch warning would come before our sentence
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, ...
        raise CheckpointError(
            f"{path} is damaged (truncated or not a dlc checkpoint: {type(e).__name__}); it cannot be resumed. "
            "Start a new run instead."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a dlc checkpoint of format {FORMAT_VERSION}; it cannot be resumed.")
    return state
