"""The training data path, side by side in one run on the same images and augmentations:

- tensor: uint8 images held as one tensor; each batch is indexed out of it and augmented
  by dlcourse_tui.data.augment (flip, random crop with padding, colour cast, affine) as
  batched tensor ops, then turned into floats in [0, 1];
- PIL + DataLoader: a Dataset of PIL images with torchvision.transforms
  (RandomHorizontalFlip, RandomCrop(padding), ColorJitter, RandomAffine, ToTensor),
  batched by torch.utils.data.DataLoader with num_workers 0 and 2.

Both produce shuffled (B, C, H, W) float batches in [0, 1] with labels. The colour
transforms differ in detail (a per-channel gain and offset against ColorJitter's
brightness, contrast and saturation); both touch every pixel a few times. Prints images
per second (best of --repeats passes over the set) and the ratio against the better
baseline. The tensor path gets as many torch threads as the largest DataLoader has
worker processes (`--threads 1` to see it on one core). Run from the repository root:
`python bench/bench_datapath.py [--n 4096] [--threads T]`.
Standard library, torch and torchvision only; not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from dlcourse_tui.data.augment import Augmenter, parse_augment  # noqa: E402
from dlcourse_tui.data.shapes import shapes_dataset  # noqa: E402

PAD = 4
SPEC = f"flip=0.5,crop={PAD},color=0.2,affine=0.5"


class PILImages(torch.utils.data.Dataset):
    """(PIL image, label) pairs through a torchvision transform: the classic input pipeline."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform) -> None:
        from PIL import Image

        self.images = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in x]  # (H, W, 3) uint8 each
        self.labels = y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def pil_transform(size: int):
    """The same four augmentations in torchvision's PIL-based transforms (strengths matched
    to SPEC: flip p 0.5, ±4 px crop, 0.2 colour, ±15° rotation, scale ±7.5 %, shear ±4°)."""
    from torchvision import transforms as T

    return T.Compose([
        T.RandomHorizontalFlip(0.5),
        T.RandomCrop(size, padding=PAD),
        T.RandomAffine(degrees=15, scale=(0.925, 1.075), shear=4),
        T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        T.ToTensor(),
    ])


def time_loader(x: torch.Tensor, y: torch.Tensor, workers: int, batch: int, repeats: int) -> float:
    """Images per second of a DataLoader over PIL images, best of `repeats` epochs
    (worker start-up counted once per epoch, as in training without persistent workers)."""
    ds = PILImages(x, y, pil_transform(x.shape[-1]))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0)
    best = 0.0
    for r in range(repeats + 1):  # the first pass starts the workers: a warm-up
        t0 = time.perf_counter()
        n = 0
        for xb, yb in loader:
            n += xb.shape[0]
        rate = n / (time.perf_counter() - t0)
        if r > 0 or repeats == 0:
            best = max(best, rate)
    return best


def time_tensor(x: torch.Tensor, y: torch.Tensor, batch: int, repeats: int) -> float:
    """Images per second of the tensor path: shuffled index, gather, augment, to floats."""
    aug = Augmenter(parse_augment(SPEC), seed=0)
    best = 0.0
    g = torch.Generator().manual_seed(0)
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        order = torch.randperm(len(x), generator=g)
        n = 0
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            xb = aug(x[idx]).float().div_(255)  # (B, C, H, W) in [0, 1]
            yb = y[idx]
            n += xb.shape[0]
        rate = n / (time.perf_counter() - t0)
        if r > 0:
            best = max(best, rate)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4096, help="images (32×32 RGB `shapes`)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the images (after a warm-up)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of the tensor path and the main process (default: as many as the "
                             "largest --workers, so both paths may use the same cores)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to time")
    args = parser.parse_args()
    args.threads = args.threads or max(1, *args.workers)
    torch.set_num_threads(args.threads)
    data = shapes_dataset(n_train=args.n, n_val=1, seed=0)
    x, y = data.train.x, data.train.y  # (N, 3, 32, 32) uint8, (N,)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.threads} torch thread(s) in the main process, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{args.n} images 3×32×32, batch {args.batch}, augment {SPEC}; best of {args.repeats} passes")
    rows = [("tensor path (augment.py, uint8 batches)", time_tensor(x, y, args.batch, args.repeats))]
    print(f"{rows[0][0]:<48}{rows[0][1]:>12,.0f} images/s", flush=True)
    baselines = []
    for w in args.workers:
        rate = time_loader(x, y, w, args.batch, args.repeats)
        name = f"PIL + torchvision.transforms, num_workers={w}"
        baselines.append(rate)
        print(f"{name:<48}{rate:>12,.0f} images/s", flush=True)
    best = max(baselines)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"ratio tensor path / best baseline: {rows[0][1] / best:.1f}×  (target ≥ 5×); "
          f"load average after {load[0]:.2f}")


if __name__ == "__main__":
    main()
