"""Real datasets through torchvision's own classes, converted once to uint8 tensors.

MNIST, Fashion-MNIST and CIFAR-10 come from `torchvision.datasets` (with `--download`
when asked); ImageFolder reads a learner's own images laid out as DIR/CLASS/xxx.png
(or DIR/train/CLASS/… and DIR/val/CLASS/…). Every problem a learner can fix (no
`--data-dir`, missing or corrupt files, an empty folder) is a `UserError` naming the
files and the command that fixes it, never a torchvision traceback. torchvision is
imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dlcourse_tui.data.base import Dataset, Split, channel_stats
from dlcourse_tui.errors import UserError, suggest

REAL_DATASETS = ("mnist", "fashion-mnist", "cifar10", "imagefolder")

# name -> (torchvision class name, the folder under data_dir it reads, the files it needs there)
_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR10_FILES = (
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
    "batches.meta",
)
_TORCHVISION_SETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "mnist": ("MNIST", "MNIST/raw", _MNIST_FILES),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw", _MNIST_FILES),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", _CIFAR10_FILES),
}
_DISPLAY = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}

_VAL_FRACTION = 0.2  # one-folder ImageFolder: this share of the images becomes the val split
_CACHE_DIR = ".dlc-cache"
_IMAGEFOLDER_LAYOUT = "DIR/CLASS/xxx.png (one subfolder per class), or DIR/train/CLASS/xxx.png and DIR/val/CLASS/xxx.png"


def load_real(
    name: str,
    *,
    data_dir: Path | None,
    download: bool,
    n_train: int | None = None,
    n_val: int | None = None,
    image_size: int = 32,
    seed: int = 0,
    lesson: str = "LESSON",
) -> Dataset:
    """Load a real dataset as uint8 tensors: `name` is one of `REAL_DATASETS`.

    MNIST-likes give (N, 1, 28, 28), CIFAR-10 (N, 3, 32, 32), ImageFolder
    (N, 3, image_size, image_size); `image_size` only applies to ImageFolder.
    `n_train`/`n_val` take a subset chosen by a permutation seeded with `seed`.
    `lesson` only fills in the `dlc run LESSON …` command shown in error messages.
    """
    key = name.strip().lower()
    if key not in REAL_DATASETS:
        raise UserError(
            f"Unknown real dataset '{name}'.{suggest(key, REAL_DATASETS)} "
            f"Real datasets: {', '.join(REAL_DATASETS)}."
        )
    for arg, value in (("n_train", n_train), ("n_val", n_val)):
        if value is not None and value < 0:
            raise UserError(f"{arg} must be 0 or more, got {value}.")
    if data_dir is None:
        if key == "imagefolder":
            raise UserError(
                "--data imagefolder reads your own images: pass --data-dir PATH, "
                f"a folder laid out as {_IMAGEFOLDER_LAYOUT.replace('DIR', 'PATH')}."
            )
        raise UserError(
            f"--data {key} reads real files: pass --data-dir PATH "
            f"(and --download to fetch {_DISPLAY[key]} into PATH the first time)."
        )
    root = Path(data_dir).expanduser()

    if key == "imagefolder":
        if download:
            raise UserError(
                "ImageFolder reads your own files; there is nothing to download: "
                f"drop --download and point --data-dir at a folder laid out as {_IMAGEFOLDER_LAYOUT}."
            )
        if image_size < 1:
            raise UserError(f"image_size must be 1 or more, got {image_size}.")
        train_x, train_y, val_x, val_y, classes = _load_imagefolder(root, image_size, seed)
    else:
        train_x, train_y, val_x, val_y, classes = _load_torchvision(key, root, download, lesson)

    train_x, train_y = _subset(train_x, train_y, n_train, seed, salt=1)
    val_x, val_y = _subset(val_x, val_y, n_val, seed, salt=2)
    _check_trainable(key, root, classes, len(train_y), len(val_y))
    mean, std = channel_stats(train_x) if len(train_x) else ((), ())
    return Dataset(
        name=key,
        kind="image",
        train=Split(train_x, train_y),
        val=Split(val_x, val_y),
        classes=tuple(classes),
        input_shape=tuple(train_x.shape[1:]),  # (C, H, W)
        mean=mean,
        std=std,
    )


def _check_trainable(name: str, root: Path, classes: list[str], n_train: int, n_val: int) -> None:
    """UserError unless there are two classes or more and both splits hold images."""
    shown = _DISPLAY.get(name, "ImageFolder")
    if len(classes) < 2:
        raise UserError(f"{shown} in {root} has one class ({', '.join(classes) or 'none'}): a classifier needs "
                        "two or more to tell apart; add a folder of images for each other class.")
    for split, n, knob, use in (("training", n_train, "n_train", "train on"), ("validation", n_val, "n_val", "measure on")):
        if n > 0:
            continue
        how = f"raise data.{knob}, e.g. --set {knob}=100"
        if name == "imagefolder":
            how = (f"add images to {root} (with 2 or more, a fifth of them is held out for validation), "
                   f"or give {root}/train/CLASS/ and {root}/val/CLASS/ folders")
        raise UserError(f"{shown} in {root}: the {split} split is empty, so there is nothing to {use}; {how}.")


# ----------------------------------------------------------------------------- torchvision sets


def missing_files(name: str, data_dir: Path) -> list[Path]:
    """The files torchvision needs for `name` that are not in `data_dir` (empty when all are there)."""
    _, folder, files = _TORCHVISION_SETS[name]
    base = data_dir / folder
    if name != "cifar10":
        # torchvision's MNIST also accepts its old processed/ cache (training.pt and test.pt)
        processed = base.parent / "processed"
        if (processed / "training.pt").is_file() and (processed / "test.pt").is_file():
            return []
    return [base / f for f in files if not (base / f).is_file()]


def _fetch_command(lesson: str, name: str, data_dir: Path) -> str:
    return f"dlc run {lesson} --data {name} --data-dir {shlex.quote(str(data_dir))} --download"


def _load_torchvision(
    name: str, root: Path, download: bool, lesson: str
) -> tuple[Tensor, Tensor, Tensor, Tensor, list[str]]:
    """Train and val tensors of MNIST, Fashion-MNIST or CIFAR-10 via torchvision's class."""
    import torchvision.datasets as tvd

    cls_name, _, _ = _TORCHVISION_SETS[name]
    cls = getattr(tvd, cls_name)
    display = _DISPLAY[name]
    fetch = _fetch_command(lesson, name, root)

    if not download:
        missing = missing_files(name, root)
        if missing:
            raise UserError(
                f"{display} files are missing: {', '.join(str(p) for p in missing)}; "
                f"fetch them with: {fetch}"
            )

    splits = []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=download and train)
        except Exception as exc:  # torchvision's RuntimeError/URLError/pickle errors -> one sentence
            raise UserError(_torchvision_failure(display, name, root, download, fetch, exc)) from exc
        splits.append(_to_tensors(name, ds))
    (train_x, train_y, classes), (val_x, val_y, _) = splits
    return train_x, train_y, val_x, val_y, classes


def _torchvision_failure(
    display: str, name: str, root: Path, download: bool, fetch: str, exc: Exception
) -> str:
    """The sentence for a torchvision class that refused the files or the download."""
    _, folder, _ = _TORCHVISION_SETS[name]
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if download:
        return (
            f"Could not download {display} into {root} ({reason}); check the network, "
            f"or copy the files into {root / folder} by hand and run without --download."
        )
    return (
        f"{display} files in {root / folder} are unreadable or corrupted ({reason}); "
        f"delete them and fetch them again with: {fetch}"
    )


def _to_tensors(name: str, ds: Any) -> tuple[Tensor, Tensor, list[str]]:
    """(x uint8 (N, C, H, W), y int64 (N,), classes) from a torchvision dataset object."""
    if name == "cifar10":
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        y = torch.as_tensor(ds.targets, dtype=torch.int64)  # (N,)
    else:
        x = ds.data.to(torch.uint8).unsqueeze(1).contiguous()  # (N, 28, 28) -> (N, 1, 28, 28)
        y = torch.as_tensor(ds.targets).to(torch.int64)  # (N,)
    return x, y, list(ds.classes)


# ----------------------------------------------------------------------------- ImageFolder


def _folder_class() -> type:
    """torchvision's ImageFolder, skipping hidden folders (.dlc-cache) and able to take a fixed class list."""
    from torchvision.datasets import ImageFolder

    class _ImageFolder(ImageFolder):
        def __init__(self, root: str, classes: list[str] | None = None, **kwargs: Any) -> None:
            self._fixed_classes = classes
            super().__init__(root, **kwargs)

        def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
            classes = self._fixed_classes
            if classes is None:
                classes = _class_folders(Path(directory))
            if not classes:
                raise FileNotFoundError(f"no class folders in {directory}")
            return list(classes), {c: i for i, c in enumerate(classes)}

    return _ImageFolder


def _class_folders(directory: Path) -> list[str]:
    """Sorted names of the visible subfolders of `directory`."""
    return sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))


def _is_image(path: str) -> bool:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    base = os.path.basename(path)
    return not base.startswith(".") and base.lower().endswith(IMG_EXTENSIONS)


def _open_folder(directory: Path, classes: list[str] | None, allow_empty: bool) -> Any:
    """An ImageFolder over `directory`, or a UserError saying which layout is expected."""
    if not directory.is_dir():
        raise UserError(
            f"ImageFolder: {directory} is not a folder; expected images laid out as {_IMAGEFOLDER_LAYOUT}."
        )
    found = _class_folders(directory)
    if not found:
        raise UserError(
            f"ImageFolder: {directory} has no class subfolders; expected images laid out as {_IMAGEFOLDER_LAYOUT}."
        )
    if classes is not None and set(found) - set(classes):
        extra = ", ".join(sorted(set(found) - set(classes)))
        raise UserError(
            f"ImageFolder: {directory} has class folders that train/ lacks ({extra}); "
            "train/ and val/ need the same class subfolders."
        )
    try:
        return _folder_class()(
            str(directory), classes=classes, is_valid_file=_is_image, allow_empty=allow_empty
        )
    except FileNotFoundError as exc:
        from torchvision.datasets.folder import IMG_EXTENSIONS

        empty = ", ".join(c for c in found if not _has_image(directory / c)) or str(exc)
        raise UserError(
            f"ImageFolder: no images in {directory} for the classes {empty}; expected images "
            f"laid out as {_IMAGEFOLDER_LAYOUT}, with extensions {' '.join(IMG_EXTENSIONS)}."
        ) from exc


def _has_image(folder: Path) -> bool:
    return any(_is_image(f) for _, _, files in os.walk(folder, followlinks=True) for f in files)


def _load_imagefolder(
    root: Path, image_size: int, seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, list[str]]:
    """Train/val tensors from root/train + root/val, or from root split 80/20 by `seed`."""
    has_train, has_val = (root / "train").is_dir(), (root / "val").is_dir()
    if has_train != has_val:
        present, absent = ("train", "val") if has_train else ("val", "train")
        raise UserError(
            f"ImageFolder: {root} has {present}/ but no {absent}/; give both {root}/train/CLASS/… and "
            f"{root}/val/CLASS/…, or put the class folders directly in {root} to split them 80/20."
        )
    if has_train:
        train_ds = _open_folder(root / "train", None, allow_empty=False)
        val_ds = _open_folder(root / "val", list(train_ds.classes), allow_empty=True)
        parts = {"train": train_ds, "val": val_ds}
    else:
        parts = {"all": _open_folder(root, None, allow_empty=False)}
    classes = list(next(iter(parts.values())).classes)

    tensors = _cached_convert(root, parts, classes, image_size)
    if has_train:
        return tensors["train_x"], tensors["train_y"], tensors["val_x"], tensors["val_y"], classes

    x, y = tensors["all_x"], tensors["all_y"]  # (N, 3, S, S), (N,)
    n = len(y)
    n_val = 0 if n < 2 else max(1, round(n * _VAL_FRACTION))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))  # (N,)
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx], classes


def _cached_convert(
    root: Path, parts: dict[str, Any], classes: list[str], image_size: int
) -> dict[str, Any]:
    """Converted tensors per part, from data_dir/.dlc-cache when the file list and mtimes match."""
    digest = hashlib.sha256()
    digest.update(f"{image_size}\n{'/'.join(classes)}\n".encode())
    for part, ds in parts.items():
        for path, label in ds.samples:
            st = os.stat(path)
            rel = os.path.relpath(path, root)
            digest.update(f"{part}\t{rel}\t{label}\t{st.st_mtime_ns}\t{st.st_size}\n".encode())
    cache_dir = root / _CACHE_DIR
    cache_file = cache_dir / f"imagefolder-{image_size}-{digest.hexdigest()[:16]}.pt"

    if cache_file.is_file():
        try:
            cached = torch.load(cache_file, weights_only=True)
            if all(f"{p}_x" in cached and f"{p}_y" in cached for p in parts):
                return cached
        except Exception:  # a damaged cache is rebuilt, not reported
            pass

    out: dict[str, Any] = {"classes": classes}
    for part, ds in parts.items():
        out[f"{part}_x"], out[f"{part}_y"] = _convert_folder(ds, image_size)
    _write_cache(cache_dir, cache_file, out)
    return out


def _convert_folder(ds: Any, image_size: int) -> tuple[Tensor, Tensor]:
    """Every image of an ImageFolder through its loader, as RGB, resized to image_size²."""
    import numpy as np
    from PIL import Image

    arrays = []
    for path, _ in ds.samples:
        try:
            img = ds.loader(path).convert("RGB").resize((image_size, image_size), Image.BILINEAR)
        except (OSError, ValueError) as exc:
            raise UserError(f"ImageFolder: cannot read the image {path} ({exc}); delete or replace it.") from exc
        arrays.append(np.asarray(img, dtype=np.uint8))  # (S, S, 3)
    y = torch.tensor([label for _, label in ds.samples], dtype=torch.int64)  # (N,)
    if not arrays:
        return torch.zeros(0, 3, image_size, image_size, dtype=torch.uint8), y
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N, S, S, 3) -> (N, 3, S, S)
    return x, y


def _write_cache(cache_dir: Path, cache_file: Path, tensors: dict[str, Any]) -> None:
    """Save atomically (temp file + os.replace) and drop stale caches of the same size; skip if read-only."""
    tmp = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=cache_file.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save(tensors, f)
        os.replace(tmp, cache_file)
        tmp = None
        prefix = cache_file.name.rsplit("-", 1)[0] + "-"
        for old in cache_dir.glob(f"{prefix}*.pt"):
            if old != cache_file:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a folder we cannot write to still loads, only without the cache
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- subsets


def _subset(x: Tensor, y: Tensor, n: int | None, seed: int, salt: int) -> tuple[Tensor, Tensor]:
    """The first n of a seeded permutation, kept in dataset order; all of it when n is None or larger."""
    if n is None or n >= len(y):
        return x, y
    g = torch.Generator().manual_seed(seed * 1000 + salt)
    idx = torch.randperm(len(y), generator=g)[:n].sort().values  # (n,)
    return x[idx], y[idx]
