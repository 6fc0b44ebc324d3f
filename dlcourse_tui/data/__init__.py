"""Datasets by name: embedded generators (default, nothing downloaded) and real sets
through torchvision when asked. Everything becomes a `Dataset` of tensors (base.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlcourse_tui.errors import UserError, suggest

if TYPE_CHECKING:
    from dlcourse_tui.data.base import Dataset

TOY2D = ("blobs", "moons", "circles", "spirals", "xor")
SEQUENCES = ("memory", "reverse", "sort")  # chapter 4: a long-memory task, two sequence-to-sequence tasks
EMBEDDED = TOY2D + ("shapes", "digits") + SEQUENCES + ("scenes",)  # scenes: several shapes per image (chapter 2, 5)
REAL = ("mnist", "fashion-mnist", "cifar10", "imagefolder")
DATASET_NAMES = EMBEDDED + REAL

_DEFAULT_SIZES = {"n_train": 5000, "n_val": 1000}


def load_dataset(name: str, *, seed: int, args: dict[str, Any] | None = None, lesson: str = "LESSON") -> Dataset:
    """The dataset `name` built from `args` (n_train, n_val, noise, dir, download, ...)."""
    args = dict(args or {})
    data_dir, download = args.pop("dir", None), bool(args.pop("download", False))
    if name in REAL:  # real sets: without n_train / n_val, the whole split
        from dlcourse_tui.data.real import load_real

        return load_real(name, data_dir=Path(data_dir).expanduser() if data_dir else None, download=download,
                         n_train=args.get("n_train"), n_val=args.get("n_val"), seed=seed, lesson=lesson)
    args = {**_DEFAULT_SIZES, **args}
    n_train, n_val = int(args.pop("n_train")), int(args.pop("n_val"))
    if n_train < 1 or n_val < 1:
        raise UserError(f"data.n_train={n_train}, data.n_val={n_val}: both splits need at least 1 example.")
    if name in TOY2D:
        from dlcourse_tui.data.toy2d import toy2d_dataset

        return toy2d_dataset(name, n_train=n_train, n_val=n_val, seed=seed, noise=args.get("noise"))
    if name == "shapes":
        from dlcourse_tui.data.shapes import shapes_dataset

        return shapes_dataset(n_train=n_train, n_val=n_val, seed=seed, **_only(args, ("clutter", "noise", "max_objects", "position_jitter", "rotation")))
    if name == "scenes":
        from dlcourse_tui.data.scenes import scenes_dataset

        return scenes_dataset(n_train=n_train, n_val=n_val, seed=seed,
                              **_only(args, ("size", "max_objects", "min_objects", "clutter", "noise", "min_size", "max_size")))
    if name == "digits":
        from dlcourse_tui.data.digits import digits_dataset

        return digits_dataset(n_train=n_train, n_val=n_val, seed=seed, **_only(args, ("noise",)))
    if name == "memory":
        from dlcourse_tui.data.sequences import memory_dataset

        return memory_dataset(n_train=n_train, n_val=n_val, seed=seed, **_only(args, ("seq_len", "n_symbols", "key_window")))
    if name in ("reverse", "sort"):
        from dlcourse_tui.data.sequences import seq2seq_dataset

        return seq2seq_dataset(name, n_train=n_train, n_val=n_val, seed=seed, **_only(args, ("seq_len", "n_symbols")))
    raise UserError(f"no dataset {name!r}.{suggest(name, DATASET_NAMES)} Datasets: {', '.join(DATASET_NAMES)}.")


def _only(args: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if k in keys}
