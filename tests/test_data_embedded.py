"""Behaviour of the embedded data generators: toy2d, shapes and digits.

Every test here is meant to be able to fail: determinism, value ranges, class balance,
that masks, boxes and captions agree with the pixels, and that the problems are as hard
as their lessons need (linear models succeed or fail where they should).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from dlcourse_tui.data.base import Dataset, Split
from dlcourse_tui.data.digits import DIGIT_CLASSES, digits_dataset, make_digits, pixel_grid, segment_distance_sq
from dlcourse_tui.data.shapes import PALETTE, SHAPE_CLASSES, make_shapes, shapes_dataset
from dlcourse_tui.data.toy2d import TOY2D_KINDS, make_toy2d, toy2d_dataset

# ---------------------------------------------------------------------------- helpers


def _train_linear(x: Tensor, y: Tensor, *, hidden: int = 0, steps: int = 300, lr: float = 0.05) -> torch.nn.Module:
    """Full-batch Adam on cross-entropy: a linear model, or an MLP with two hidden layers."""
    torch.manual_seed(0)
    d, k = x.shape[1], int(y.max()) + 1
    if hidden:
        model: torch.nn.Module = torch.nn.Sequential(
            torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, k),
        )
    else:
        model = torch.nn.Linear(d, k)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def _accuracy(model: torch.nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def _ridge_probe(train: Split, val: Split, lam: float = 1000.0) -> float:
    """Validation accuracy of ridge regression onto one-hot labels from standardised raw pixels."""
    xt = train.x.float().div(255).flatten(1)  # (N, D)
    xv = val.x.float().div(255).flatten(1)  # (M, D)
    mu, sd = xt.mean(0), xt.std(0) + 1e-2
    xt, xv = (xt - mu) / sd, (xv - mu) / sd
    y = torch.nn.functional.one_hot(train.y, 10).float()  # (N, 10)
    # dual form: cheaper than the primal when N < D
    alpha = torch.linalg.solve(xt @ xt.T + lam * torch.eye(len(xt)), y - y.mean(0))  # (N, 10)
    scores = (xv @ xt.T) @ alpha  # (M, 10)
    return (scores.argmax(1) == val.y).float().mean().item()


# ---------------------------------------------------------------------------- toy2d


@pytest.mark.parametrize("kind", TOY2D_KINDS)
def test_toy2d_shapes_dtypes_range_balance(kind: str) -> None:
    x, y = make_toy2d(kind, 1001, seed=3)
    assert x.shape == (1001, 2) and x.dtype == torch.float32
    assert y.shape == (1001,) and y.dtype == torch.int64
    assert set(y.tolist()) == {0, 1}
    assert abs(int((y == 1).sum()) - int((y == 0).sum())) <= 1
    assert torch.isfinite(x).all()
    assert x.abs().quantile(0.99).item() <= 1.5
    assert x.abs().max().item() <= 2.5
    # both classes spread over the plane, not a single point
    assert x[y == 0].std(0).min().item() > 0.1 and x[y == 1].std(0).min().item() > 0.1


@pytest.mark.parametrize("kind", TOY2D_KINDS)
def test_toy2d_deterministic_and_seeded(kind: str) -> None:
    state = torch.random.get_rng_state()
    x1, y1 = make_toy2d(kind, 200, seed=7)
    x2, y2 = make_toy2d(kind, 200, seed=7)
    x3, _ = make_toy2d(kind, 200, seed=8)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    assert torch.equal(state, torch.random.get_rng_state()), "the global RNG must not be touched"


def test_toy2d_noise_argument_changes_spread() -> None:
    x0, y0 = make_toy2d("circles", 2000, seed=1, noise=0.0)
    r = x0.norm(dim=1)
    assert torch.allclose(r[y0 == 0], torch.full_like(r[y0 == 0], r[y0 == 0][0].item()), atol=1e-5)
    x1, _ = make_toy2d("circles", 2000, seed=1, noise=0.2)
    assert x1.norm(dim=1)[y0 == 0].std() > 0.1


def test_toy2d_unknown_kind() -> None:
    with pytest.raises(ValueError, match="spirals"):
        make_toy2d("bananas", 10, seed=0)


def test_toy2d_blobs_linearly_separable() -> None:
    ds = toy2d_dataset("blobs", n_train=800, n_val=800, seed=0)
    model = _train_linear(ds.train.x, ds.train.y)
    assert _accuracy(model, ds.val.x, ds.val.y) >= 0.95


def test_toy2d_spirals_defeat_a_linear_model_but_not_an_mlp() -> None:
    ds = toy2d_dataset("spirals", n_train=1000, n_val=1000, seed=0)
    linear = _train_linear(ds.train.x, ds.train.y)
    assert _accuracy(linear, ds.val.x, ds.val.y) < 0.7
    mlp = _train_linear(ds.train.x, ds.train.y, hidden=48, steps=700, lr=0.02)
    assert _accuracy(mlp, ds.val.x, ds.val.y) >= 0.95


@pytest.mark.parametrize("kind", ["circles", "xor"])
def test_toy2d_nonlinear_kinds_stay_near_chance_for_a_linear_model(kind: str) -> None:
    ds = toy2d_dataset(kind, n_train=800, n_val=800, seed=0)
    model = _train_linear(ds.train.x, ds.train.y)
    assert _accuracy(model, ds.val.x, ds.val.y) < 0.7


def test_toy2d_dataset_metadata_and_splits() -> None:
    ds = toy2d_dataset("moons", n_train=300, n_val=100, seed=5)
    assert isinstance(ds, Dataset)
    assert (ds.name, ds.kind, ds.input_shape, ds.num_classes) == ("moons", "points", (2,), 2)
    assert len(ds.train) == 300 and len(ds.val) == 100
    assert not torch.equal(ds.train.x[:100], ds.val.x)
    again = toy2d_dataset("moons", n_train=300, n_val=100, seed=5)
    assert torch.equal(ds.train.x, again.train.x) and torch.equal(ds.val.x, again.val.x)


# ---------------------------------------------------------------------------- shapes


@pytest.fixture(scope="module")
def shapes1() -> Split:
    return make_shapes(600, seed=11)


@pytest.fixture(scope="module")
def shapes3() -> Split:
    return make_shapes(600, seed=12, max_objects=3)


def test_shapes_types_and_balance(shapes1: Split) -> None:
    s = shapes1
    assert s.x.shape == (600, 3, 32, 32) and s.x.dtype == torch.uint8
    assert s.y.shape == (600,) and s.y.dtype == torch.int64
    counts = torch.bincount(s.y, minlength=10)
    assert counts.tolist() == [60] * 10
    assert len(SHAPE_CLASSES) == 10 and len(set(SHAPE_CLASSES)) == 10
    assert s.extras["masks"].shape == (600, 32, 32) and s.extras["masks"].dtype == torch.uint8
    assert s.extras["boxes"].shape == (600, 1, 4) and s.extras["boxes"].dtype == torch.float32
    assert s.extras["box_labels"].shape == (600, 1) and s.extras["box_labels"].dtype == torch.int64
    assert isinstance(s.extras["captions"], list) and len(s.extras["captions"]) == 600
    # images use the whole range and are not flat
    assert s.x.float().std(dim=(1, 2, 3)).min() > 5


def test_shapes_deterministic() -> None:
    a, b, c = make_shapes(40, seed=1), make_shapes(40, seed=1), make_shapes(40, seed=2)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert torch.equal(a.extras["masks"], b.extras["masks"]) and a.extras["captions"] == b.extras["captions"]
    assert not torch.equal(a.x, c.x)


def test_shapes_single_object_mask_box_caption(shapes1: Split) -> None:
    s = shapes1
    masks, boxes = s.extras["masks"], s.extras["boxes"]
    assert torch.equal(s.extras["box_labels"][:, 0], s.y)
    for i in range(len(s)):
        m = masks[i]
        ys, xs = (m > 0).nonzero(as_tuple=True)
        assert len(ys) >= 15, "the object must cover a fair number of pixels"
        assert set(m[m > 0].unique().tolist()) == {int(s.y[i]) + 1}
        # the box is tight around the mask, in pixel-edge coordinates
        assert boxes[i, 0].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
        assert SHAPE_CLASSES[int(s.y[i])] in s.extras["captions"][i]
    # sizes span roughly 30-70% of the image
    side = (boxes[:, 0, 2:] - boxes[:, 0, :2]).amax(1) / 32
    assert side.min() < 0.35 and side.max() > 0.6 and side.min() > 0.15


def test_shapes_multi_object_extras(shapes3: Split) -> None:
    s = shapes3
    masks, boxes, labels = s.extras["masks"], s.extras["boxes"], s.extras["box_labels"]
    assert boxes.shape == (600, 3, 4) and labels.shape == (600, 3)
    assert torch.equal(labels[:, 0], s.y)
    present = labels >= 0
    # 1..3 objects per image, absent ones padded at the end with -1 and an empty box
    assert present[:, 0].all()
    assert set(present.sum(1).tolist()) == {1, 2, 3}
    assert (present[:, 1:].int() <= present[:, :-1].int()).all()
    assert (boxes[~present] == 0).all()
    assert (boxes[present][:, 2:] > boxes[present][:, :2]).all()
    # object 0 is the largest (box areas also depend on shape and rotation, so on average)
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])  # (N, 3)
    assert area[:, 0].mean() > 1.5 * area[:, 1:][present[:, 1:]].mean()
    ys, xs = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    for i in range(len(s)):
        m = masks[i]
        # every labelled pixel lies in the box of an object of that class
        inside_any = torch.zeros(32, 32, dtype=torch.bool)
        for k in range(3):
            if labels[i, k] < 0:
                continue
            x0, y0, x1, y1 = boxes[i, k].tolist()
            in_box = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
            inside_any |= in_box & (m == labels[i, k] + 1)
        assert torch.equal(inside_any, m > 0)
        assert set(m[m > 0].unique().tolist()) <= {int(v) + 1 for v in labels[i][labels[i] >= 0]}
        caption = s.extras["captions"][i]
        for k in range(int(present[i].sum())):
            assert SHAPE_CLASSES[int(labels[i, k])] in caption
        assert caption.startswith("a ") and caption.count(" and ") == (1 if present[i].sum() > 1 else 0)


def test_shapes_captions_describe_the_pixels() -> None:
    s = make_shapes(300, seed=4, clutter=0.0, noise=0.0)
    names = [name for name, _ in PALETTE]
    rgb = torch.tensor([c for _, c in PALETTE])  # (P, 3)
    colour_ok = side_ok = 0
    areas: dict[str, list[int]] = {"small": [], "medium": [], "large": []}
    for i, caption in enumerate(s.extras["captions"]):
        words = caption.split()
        size_word, colour_word = words[1], words[2]
        assert size_word in areas and colour_word in names
        obj = s.extras["masks"][i] > 0
        mean = s.x[i].float().div(255)[:, obj].mean(1)  # (3,)
        colour_ok += names[int((rgb - mean).norm(dim=1).argmin())] == colour_word
        areas[size_word].append(int(obj.sum()))
        x0, y0, x1, y1 = s.extras["boxes"][i, 0].tolist()
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if "left" in caption:
            side_ok += cx < 16
        elif "right" in caption:
            side_ok += cx > 16
        elif "top" in caption:
            side_ok += cy < 16
        elif "bottom" in caption:
            side_ok += cy > 16
        else:
            assert "in the middle" in caption
            side_ok += abs(cx - 16) < 6 and abs(cy - 16) < 6
    assert colour_ok >= 0.9 * len(s)
    assert side_ok >= 0.95 * len(s)
    mean_area = {k: sum(v) / len(v) for k, v in areas.items()}
    assert mean_area["small"] < mean_area["medium"] < mean_area["large"]


def test_shapes_objects_contrast_with_background() -> None:
    s = make_shapes(300, seed=6, clutter=0.0, noise=0.0)
    x = s.x.float().div(255)  # (N, 3, H, W)
    obj = (s.extras["masks"] > 0)[:, None]  # (N, 1, H, W)
    # compare the object with the background pixels next to it (inside its box)
    ring = torch.nn.functional.max_pool2d(obj.float(), 5, 1, 2).bool() & ~obj  # (N, 1, H, W)
    fg = (x * obj).sum((2, 3)) / obj.sum((2, 3))  # (N, 3)
    bg = (x * ring).sum((2, 3)) / ring.sum((2, 3)).clamp_min(1)  # (N, 3)
    assert ((fg - bg).norm(dim=1) > 0.25).all()


def test_shapes_colour_and_area_do_not_give_the_class_away(shapes1: Split) -> None:
    s = shapes1
    obj = s.extras["masks"] > 0
    area = obj.sum((1, 2)).float()  # (N,)
    x = s.x.float()
    colour = (x * obj[:, None]).sum((2, 3)) / obj.sum((1, 2))[:, None]  # (N, 3)
    # every class shows a wide range of areas and of colours
    for k in range(10):
        sel = s.y == k
        assert area[sel].max() / area[sel].min() > 2.0, SHAPE_CLASSES[k]
        assert colour[sel].std(0).mean() > 30, SHAPE_CLASSES[k]


def test_shapes_linear_probe_stays_well_below_a_cnn() -> None:
    train, val = make_shapes(1500, seed=21), make_shapes(500, seed=22)
    acc = _ridge_probe(train, val)
    assert acc < 0.6
    assert acc > 0.1 - 0.04  # not broken: about chance or a little better
    # centring the object gives the linear model a real template to learn
    train_c = make_shapes(1500, seed=21, position_jitter=0.0)
    val_c = make_shapes(500, seed=22, position_jitter=0.0)
    assert _ridge_probe(train_c, val_c) > acc + 0.08


def test_shapes_arguments() -> None:
    s = make_shapes(8, seed=0, size=48, max_objects=2, clutter=0.0, noise=0.0)
    assert s.x.shape == (8, 3, 48, 48) and s.extras["masks"].shape == (8, 48, 48)
    assert s.extras["boxes"].shape == (8, 2, 4)
    centred = make_shapes(50, seed=0, position_jitter=0.0)
    b = centred.extras["boxes"][:, 0]
    centre = (b[:, :2] + b[:, 2:]) / 2
    assert ((centre - 16).abs() <= 3).all()
    with pytest.raises(ValueError):
        make_shapes(4, seed=0, max_objects=0)
    # clutter and noise add pixels that belong to no object
    clean = make_shapes(50, seed=3, clutter=0.0, noise=0.0)
    busy = make_shapes(50, seed=3, clutter=1.0, noise=0.0)
    bg = clean.extras["masks"] == 0
    diff = (clean.x.float() - busy.x.float()).abs().amax(1)  # (N, H, W)
    assert (diff[bg] > 40).float().mean() > 0.01


def test_shapes_dataset() -> None:
    ds = shapes_dataset(n_train=100, n_val=50, seed=3, max_objects=2)
    assert (ds.name, ds.kind, ds.input_shape, ds.classes) == ("shapes", "image", (3, 32, 32), SHAPE_CLASSES)
    assert len(ds.mean) == 3 and len(ds.std) == 3 and all(0 < v < 1 for v in ds.mean)
    assert ds.train.extras["boxes"].shape == (100, 2, 4)
    assert not torch.equal(ds.train.x[:50], ds.val.x)
    again = shapes_dataset(n_train=100, n_val=50, seed=3, max_objects=2)
    assert torch.equal(ds.val.x, again.val.x)


# ---------------------------------------------------------------------------- digits


def test_segment_distance_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 6, 2, generator=g) * 20  # (N, S, 2)
    b = torch.rand(4, 6, 2, generator=g) * 20  # (N, S, 2)
    b[:, 0] = a[:, 0]  # a zero-length segment is a point
    gx, gy = pixel_grid(20, 20)
    pix = torch.stack(torch.broadcast_tensors(gx, gy), dim=-1)  # (H, W, 2)
    t = torch.linspace(0, 1, 1001)  # (T,)
    pts = a[..., None, :] + t[:, None] * (b - a)[..., None, :]  # (N, S, T, 2)
    ref = (pix[None, None, :, :, None] - pts[:, :, None, None]).pow(2).sum(-1).amin(-1)  # (N, S, H, W)
    got = segment_distance_sq(a, b, gx, gy)
    assert got.shape == (4, 6, 20, 20)
    assert torch.allclose(got.sqrt(), ref.sqrt(), atol=0.02)


@pytest.fixture(scope="module")
def digits() -> Split:
    return make_digits(1000, seed=2)


def test_digits_types_balance_and_look(digits: Split) -> None:
    s = digits
    assert s.x.shape == (1000, 1, 28, 28) and s.x.dtype == torch.uint8
    assert s.y.dtype == torch.int64 and torch.bincount(s.y, minlength=10).tolist() == [100] * 10
    x = s.x.float()[:, 0]  # (N, H, W)
    ink = (x > 128).sum((1, 2))
    assert ink.min() >= 15 and ink.max() <= 300, "white strokes on black, not blank or filled"
    assert x.median() < 30
    assert x[:, :2].mean() < 20 and x[:, -2:].mean() < 20, "digits stay inside the frame"
    # centre of ink mass near the image centre, like MNIST
    w = x / x.sum((1, 2), keepdim=True)
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    cy, cx = (w * ys).sum((1, 2)), (w * xs).sum((1, 2))
    assert ((cy - 13.5).abs() < 5).all() and ((cx - 13.5).abs() < 5).all()


def test_digits_deterministic_and_varied() -> None:
    a, b, c = make_digits(50, seed=9), make_digits(50, seed=9), make_digits(50, seed=10)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    # two images of the same digit are never pixel-identical
    same = (a.y[:, None] == a.y[None, :]) & ~torch.eye(50, dtype=torch.bool)
    i, j = same.nonzero()[0].tolist()
    assert (a.x[i].float() - a.x[j].float()).abs().mean() > 5


def test_digits_are_distinguishable_but_varied(digits: Split) -> None:
    val = make_digits(500, seed=3)
    acc = _ridge_probe(digits, val, lam=100.0)
    assert 0.75 < acc < 0.995, acc
    # nearest class mean on raw pixels confuses some: the digits vary
    means = torch.stack([digits.x[digits.y == k].float().mean(0).flatten() for k in range(10)])  # (10, D)
    pred = torch.cdist(val.x.float().flatten(1), means).argmin(1)
    assert (pred == val.y).float().mean() < 0.95


def test_digits_noise_argument() -> None:
    clean = make_digits(20, seed=1, noise=0.0)
    noisy = make_digits(20, seed=1, noise=0.2)
    assert torch.equal(clean.y, noisy.y)
    assert (clean.x == 0).float().mean() > 0.6
    assert (noisy.x == 0).float().mean() < (clean.x == 0).float().mean() - 0.1


def test_digits_dataset() -> None:
    ds = digits_dataset(n_train=120, n_val=40, seed=1, noise=0.0)
    assert (ds.name, ds.kind, ds.input_shape, ds.classes) == ("digits", "image", (1, 28, 28), DIGIT_CLASSES)
    assert len(ds.mean) == 1 and 0 < ds.mean[0] < 0.5 and not math.isnan(ds.std[0])
    assert not torch.equal(ds.train.x[:40], ds.val.x)
    assert torch.equal(ds.val.x, digits_dataset(n_train=120, n_val=40, seed=1, noise=0.0).val.x)
