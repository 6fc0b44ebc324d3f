"""Real datasets: files the tests write themselves, read through torchvision's own classes.

Nothing here downloads: MNIST/Fashion-MNIST get real IDX files written by the test
(torchvision only checks that the four uncompressed files exist); CIFAR-10 gets pickled
batches in the real format, refused by torchvision's md5 check as they should be, and
read through the real code once that check alone is bypassed; ImageFolder gets a tree of
real PNG files written with Pillow.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcourse_tui.data.base import channel_stats
from dlcourse_tui.data.real import REAL_DATASETS, load_real
from dlcourse_tui.errors import UserError

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """IDX3 file: magic 2051, big-endian N, H, W, then the uint8 pixels."""
    n, h, w = images.shape
    path.write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """IDX1 file: magic 2049, big-endian N, then the uint8 labels."""
    path.write_bytes(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str, n_train: int = 6, n_test: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Write the four raw files torchvision's MNIST class reads into root/folder/raw."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
        "val_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "val_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    write_idx_images(raw / "train-images-idx3-ubyte", arrays["train_x"])
    write_idx_labels(raw / "train-labels-idx1-ubyte", arrays["train_y"])
    write_idx_images(raw / "t10k-images-idx3-ubyte", arrays["val_x"])
    write_idx_labels(raw / "t10k-labels-idx1-ubyte", arrays["val_y"])
    return arrays


CLASSES = ("ant", "bee", "cat")
PER_CLASS = 5


def image_colour(c: int, i: int) -> tuple[str, tuple[int, int, int]]:
    """Mode and the RGB colour (after .convert('RGB')) of solid image i of class c; all distinct."""
    mode = ("RGB", "L", "RGBA")[i % 3]
    if mode == "L":
        g = 100 + 10 * c + i
        return mode, (g, g, g)
    return mode, (40 * c + 10, 20 * i + 5, 200 if mode == "RGB" else 90)


def write_image(path: Path, c: int, i: int, size: tuple[int, int]) -> tuple[int, int, int]:
    mode, rgb = image_colour(c, i)
    fill: int | tuple[int, ...] = rgb[0] if mode == "L" else rgb if mode == "RGB" else (*rgb, 77)
    Image.new(mode, size, fill).save(path)
    return rgb


def write_tree(root: Path) -> dict[tuple[int, int, int], int]:
    """3 classes × 5 solid PNGs of varied sizes and modes; returns colour -> class index."""
    colour_to_class = {}
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            rgb = write_image(root / name / f"img{i}.png", c, i, (20 + 7 * i, 15 + 5 * c))
            colour_to_class[rgb] = c
    (root / "ant" / "notes.txt").write_text("not an image")  # ignored by extension
    return colour_to_class


def labels_from_pixels(x: torch.Tensor, colour_to_class: dict[tuple[int, int, int], int]) -> list[int]:
    """The class of each solid image in x (N, 3, H, W), read from its colour."""
    out = []
    for img in x:
        flat = img.reshape(3, -1)  # (3, H*W)
        assert (flat == flat[:, :1]).all(), "a solid image came back not solid"
        out.append(colour_to_class[tuple(int(v) for v in flat[:, 0])])
    return out


def cache_files(root: Path) -> list[Path]:
    return sorted((root / ".dlc-cache").glob("*.pt"))


# ----------------------------------------------------------------------------- ImageFolder


def test_imagefolder_one_folder_shapes_labels_split_and_cache(tmp_path: Path) -> None:
    colours = write_tree(tmp_path)
    ds = load_real("imagefolder", data_dir=tmp_path, download=False, seed=3)

    assert ds.name == "imagefolder" and ds.kind == "image"
    assert ds.classes == CLASSES
    assert ds.input_shape == (3, 32, 32)
    n = len(CLASSES) * PER_CLASS
    assert (len(ds.train), len(ds.val)) == (12, 3)  # 80/20 of 15
    for split in (ds.train, ds.val):
        assert split.x.dtype == torch.uint8 and split.x.shape[1:] == (3, 32, 32)
        assert split.y.dtype == torch.int64
        assert labels_from_pixels(split.x, colours) == split.y.tolist()
    # train and val together are every image exactly once
    all_colours = sorted(tuple(int(v) for v in img[:, 0, 0]) for img in torch.cat([ds.train.x, ds.val.x]))
    assert all_colours == sorted(colours) and len(all_colours) == n
    assert ds.mean == pytest.approx(channel_stats(ds.train.x)[0])
    assert ds.std == pytest.approx(channel_stats(ds.train.x)[1])

    # the cache file exists, and a second load is identical and does not take .dlc-cache for a class
    [cache] = cache_files(tmp_path)
    assert cache.name.startswith("imagefolder-32-")
    again = load_real("imagefolder", data_dir=tmp_path, download=False, seed=3)
    assert again.classes == CLASSES
    assert torch.equal(again.train.x, ds.train.x) and torch.equal(again.train.y, ds.train.y)
    assert torch.equal(again.val.x, ds.val.x) and torch.equal(again.val.y, ds.val.y)
    assert cache_files(tmp_path) == [cache]


def test_imagefolder_split_is_deterministic_under_the_seed(tmp_path: Path) -> None:
    write_tree(tmp_path)
    a = load_real("imagefolder", data_dir=tmp_path, download=False, seed=0)
    b = load_real("imagefolder", data_dir=tmp_path, download=False, seed=0)
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.y, b.train.y)
    others = [load_real("imagefolder", data_dir=tmp_path, download=False, seed=s).val.x for s in (1, 2, 3)]
    assert any(not torch.equal(o, a.val.x) for o in others), "the seed does not change the split"


def test_imagefolder_cache_is_used_and_invalidated(tmp_path: Path) -> None:
    write_tree(tmp_path)
    first = load_real("imagefolder", data_dir=tmp_path, download=False, image_size=16)
    assert first.input_shape == (3, 16, 16)
    [cache] = cache_files(tmp_path)
    assert cache.name.startswith("imagefolder-16-")

    # same size, same mtime, garbage content: only a load from the cache can still succeed
    victim = tmp_path / "bee" / "img0.png"
    st = victim.stat()
    victim.write_bytes(b"\0" * st.st_size)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    cached = load_real("imagefolder", data_dir=tmp_path, download=False, image_size=16)
    assert torch.equal(cached.train.x, first.train.x) and torch.equal(cached.val.x, first.val.x)

    # a changed mtime means a new cache key: the file is read again (and here it is unreadable)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    with pytest.raises(UserError, match="cannot read the image .*img0.png"):
        load_real("imagefolder", data_dir=tmp_path, download=False, image_size=16)

    # rewritten with a new colour: the new pixels appear and the stale cache is replaced
    Image.new("RGB", (9, 9), (1, 2, 3)).save(victim)
    fresh = load_real("imagefolder", data_dir=tmp_path, download=False, image_size=16)
    pixels = {tuple(int(v) for v in img[:, 0, 0]) for img in torch.cat([fresh.train.x, fresh.val.x])}
    assert (1, 2, 3) in pixels
    [new_cache] = cache_files(tmp_path)
    assert new_cache != cache


def test_imagefolder_train_val_folders(tmp_path: Path) -> None:
    # a 40×20 image, left half red and right half blue: catches a swapped H/W or channel order
    (tmp_path / "train" / "ant").mkdir(parents=True)
    (tmp_path / "train" / "bee").mkdir(parents=True)
    (tmp_path / "val" / "ant").mkdir(parents=True)  # val lacks "bee": allowed
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))
    img.save(tmp_path / "train" / "ant" / "a.png")
    Image.new("L", (10, 30), 128).save(tmp_path / "train" / "bee" / "b.png")
    Image.new("RGBA", (8, 8), (0, 255, 0, 10)).save(tmp_path / "val" / "ant" / "c.png")

    ds = load_real("imagefolder", data_dir=tmp_path, download=False, image_size=32)
    assert ds.classes == ("ant", "bee")
    assert ds.train.y.tolist() == [0, 1] and ds.val.y.tolist() == [0]
    x = ds.train.x  # (2, 3, 32, 32)
    assert x.shape == (2, 3, 32, 32)
    assert (x[0, :, :, :14] == torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1, 1)).all()
    assert (x[0, :, :, 18:] == torch.tensor([0, 0, 255], dtype=torch.uint8).view(3, 1, 1)).all()
    assert (x[1] == 128).all()
    assert (ds.val.x[0] == torch.tensor([0, 255, 0], dtype=torch.uint8).view(3, 1, 1)).all()

    (tmp_path / "val" / "cow").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "cow" / "d.png")
    with pytest.raises(UserError, match=r"train/ lacks \(cow\)"):
        load_real("imagefolder", data_dir=tmp_path, download=False)


def test_imagefolder_subset_is_deterministic(tmp_path: Path) -> None:
    write_tree(tmp_path)
    full = load_real("imagefolder", data_dir=tmp_path, download=False)
    a = load_real("imagefolder", data_dir=tmp_path, download=False, n_train=5, n_val=2)
    b = load_real("imagefolder", data_dir=tmp_path, download=False, n_train=5, n_val=2)
    assert (len(a.train), len(a.val)) == (5, 2)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    rows = {bytes(img.flatten().tolist()) for img in full.train.x}
    assert all(bytes(img.flatten().tolist()) in rows for img in a.train.x)
    big = load_real("imagefolder", data_dir=tmp_path, download=False, n_train=1000)
    assert torch.equal(big.train.x, full.train.x)


@pytest.mark.parametrize("layout", ["missing", "empty", "no-images", "only-train"])
def test_imagefolder_bad_layout_says_what_is_expected(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "pics"
    if layout == "empty":
        root.mkdir()
        (root / "loose.png").write_bytes(b"")  # files but no class folders
    elif layout == "no-images":
        (root / "cat").mkdir(parents=True)
        (root / "cat" / "readme.txt").write_text("hi")
        (root / "dog").mkdir()
    elif layout == "only-train":
        (root / "train" / "cat").mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(root / "train" / "cat" / "x.png")
    with pytest.raises(UserError) as info:
        load_real("imagefolder", data_dir=root, download=False)
    msg = str(info.value)
    assert str(root) in msg
    if layout == "only-train":
        assert "no val/" in msg
    else:
        assert "DIR/CLASS/xxx.png" in msg
    if layout == "no-images":
        assert "cat, dog" in msg


def test_imagefolder_download_is_refused(tmp_path: Path) -> None:
    write_tree(tmp_path)
    with pytest.raises(UserError, match="nothing to download"):
        load_real("imagefolder", data_dir=tmp_path, download=True)


# ----------------------------------------------------------------------------- MNIST-likes


@pytest.mark.parametrize(("name", "folder", "tv_class"), [("mnist", "MNIST", "MNIST"), ("fashion-mnist", "FashionMNIST", "FashionMNIST")])
def test_mnist_likes_read_test_written_idx_files(tmp_path: Path, name: str, folder: str, tv_class: str) -> None:
    import torchvision.datasets as tvd

    arrays = write_mnist(tmp_path, folder)
    ds = load_real(name, data_dir=tmp_path, download=False)

    assert ds.name == name and ds.input_shape == (1, 28, 28)
    assert ds.classes == tuple(getattr(tvd, tv_class).classes) and ds.num_classes == 10
    assert ds.train.x.dtype == torch.uint8 and ds.train.x.shape == (6, 1, 28, 28)
    assert ds.val.x.shape == (4, 1, 28, 28)
    assert ds.train.y.dtype == torch.int64
    assert np.array_equal(ds.train.x[:, 0].numpy(), arrays["train_x"])
    assert np.array_equal(ds.train.y.numpy(), arrays["train_y"])
    assert np.array_equal(ds.val.x[:, 0].numpy(), arrays["val_x"])
    assert np.array_equal(ds.val.y.numpy(), arrays["val_y"])
    mean, std = channel_stats(ds.train.x)
    assert ds.mean == pytest.approx(mean) and ds.std == pytest.approx(std)
    assert ds.mean[0] == pytest.approx(arrays["train_x"].mean() / 255, rel=1e-5)


def test_mnist_subset_is_seeded(tmp_path: Path) -> None:
    arrays = write_mnist(tmp_path, "MNIST", n_train=20, n_test=10)
    a = load_real("mnist", data_dir=tmp_path, download=False, n_train=7, n_val=3, seed=5)
    b = load_real("mnist", data_dir=tmp_path, download=False, n_train=7, n_val=3, seed=5)
    assert (len(a.train), len(a.val)) == (7, 3)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    # each kept row is a row of the file, with its own label, in file order
    idx = [next(j for j in range(20) if np.array_equal(arrays["train_x"][j], img[0].numpy())) for img in a.train.x]
    assert idx == sorted(idx)
    assert a.train.y.tolist() == arrays["train_y"][idx].tolist()
    others = [load_real("mnist", data_dir=tmp_path, download=False, n_train=7, seed=s).train.x for s in (6, 7)]
    assert any(not torch.equal(o, a.train.x) for o in others)


def test_mnist_corrupt_file_is_a_user_error(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x00\x00garbage")
    with pytest.raises(UserError, match="corrupted.*--download"):
        load_real("mnist", data_dir=tmp_path, download=False)


# ----------------------------------------------------------------------------- missing files


MISSING = {
    "mnist": ["MNIST/raw/" + f for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")],
    "fashion-mnist": ["FashionMNIST/raw/" + f for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")],
    "cifar10": ["cifar-10-batches-py/" + f for f in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta")],
}


@pytest.mark.parametrize("name", sorted(MISSING))
def test_missing_files_are_named_with_the_fetch_command(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError) as info:
        load_real(name, data_dir=tmp_path, download=False, lesson="02-cnn")
    msg = str(info.value)
    for rel in MISSING[name]:
        assert str(tmp_path / rel) in msg
    assert msg.endswith(f"dlc run 02-cnn --data {name} --data-dir {tmp_path} --download")
    assert info.value.__cause__ is None  # checked before torchvision ever ran


def test_only_the_missing_files_are_named(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError) as info:
        load_real("mnist", data_dir=tmp_path, download=False)
    msg = str(info.value)
    assert str(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte") in msg
    assert "train-images" not in msg and "t10k-images" not in msg


def write_cifar10(root: Path, n_per_batch: int = 4) -> dict[str, np.ndarray]:
    """The six batches and the meta file of cifar-10-batches-py, as CIFAR-10's own pickles:
    rows of 3072 bytes (1024 red, 1024 green, 1024 blue, each row-major 32×32)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = {}
    for f in MISSING["cifar10"]:
        name = f.split("/")[1]
        if name == "batches.meta":
            entry = {"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": n_per_batch}
        else:
            rows[name] = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
            entry = {"batch_label": name, "data": rows[name], "labels": [(i * 3) % 10 for i in range(n_per_batch)]}
        (folder / name).write_bytes(pickle.dumps(entry))
    return rows


def test_cifar10_test_written_batches_are_refused_by_torchvision_md5(tmp_path: Path) -> None:
    """torchvision md5-checks every CIFAR-10 batch, so honest fake batches cannot load."""
    write_cifar10(tmp_path)
    with pytest.raises(UserError, match=r"CIFAR-10 files in .* are unreadable or corrupted \(Dataset not found or corrupted"):
        load_real("cifar10", data_dir=tmp_path, download=False)


def test_cifar10_batches_become_the_uint8_nchw_tensors_pixel_for_pixel(tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets.cifar as tv_cifar

    rows = write_cifar10(tmp_path)
    # torchvision's md5 checks of the batches and of the meta file, and nothing else
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())
    ds = load_real("cifar10", data_dir=tmp_path, download=False)
    train = np.concatenate([rows[f"data_batch_{i}"] for i in range(1, 6)])  # (20, 3072)
    assert ds.train.x.dtype == torch.uint8 and ds.train.x.shape == (20, 3, 32, 32) and ds.input_shape == (3, 32, 32)
    assert torch.equal(ds.train.x, torch.from_numpy(train).view(20, 3, 32, 32))  # channel planes, row-major
    assert torch.equal(ds.val.x, torch.from_numpy(rows["test_batch"]).view(4, 3, 32, 32))
    assert ds.train.y.tolist() == [(i * 3) % 10 for i in range(4)] * 5 and ds.val.y.dtype == torch.int64
    assert ds.classes == tuple(f"class{i}" for i in range(10))


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("name", REAL_DATASETS)
def test_no_data_dir_says_pass_data_dir(name: str) -> None:
    with pytest.raises(UserError) as info:
        load_real(name, data_dir=None, download=False)
    msg = str(info.value)
    assert "--data-dir PATH" in msg
    assert ("--download" in msg) == (name != "imagefolder")


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UserError, match=r"Unknown real dataset 'mnst'\. Did you mean: mnist"):
        load_real("mnst", data_dir=None, download=False)


def test_torchvision_is_imported_lazily() -> None:
    code = "import sys, dlcourse_tui.data.real; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
