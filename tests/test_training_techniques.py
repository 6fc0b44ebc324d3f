"""The training-techniques lesson: tensor augmentations, batch norm by hand, the ablation grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dlcourse_tui.data.augment import (
    AugmentConfig, Augmenter, color_cast, hflip, parse_augment, random_affine, random_crop,
)
from dlcourse_tui.engine.runs import list_runs
from dlcourse_tui.errors import UserError
from dlcourse_tui.models.batchnorm import ManualBatchNorm2d, batch_norm_2d

ALL = "flip,crop,color,affine"


def _images(dtype: torch.dtype = torch.uint8, n: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (n, 3, 12, 12), generator=g, dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("spec", ["flip", "crop", "color", "affine", ALL])
def test_augmentations_keep_shape_dtype_range_and_are_deterministic(spec, dtype) -> None:
    x = _images(dtype)
    y_labels = torch.arange(len(x))
    aug_a, aug_b = Augmenter(parse_augment(spec), seed=3), Augmenter(parse_augment(spec), seed=3)
    a, b = aug_a(x), aug_b(x)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)  # same seed, same batch
    assert not torch.equal(a, x)  # it did something
    assert torch.equal(aug_a(x), aug_b(x))  # and the streams stay in step
    assert not torch.equal(aug_a(x), a)  # a new draw for the next batch
    if dtype == torch.float32:
        assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(y_labels, torch.arange(len(x)))  # labels are not an input: nothing to change
    c = Augmenter(parse_augment(spec), seed=4)(x)
    assert not torch.equal(a, c)  # another seed, other images


def test_each_augmentation_does_what_it_says() -> None:
    x = _images()
    g = torch.Generator().manual_seed(0)
    assert torch.equal(hflip(x, 1.0, g), x.flip(-1)) and torch.equal(hflip(x, 0.0, g), x)
    flipped = hflip(x, 0.5, g)
    per_image = [torch.equal(f, o) or torch.equal(f, o.flip(-1)) for f, o in zip(flipped, x)]
    assert all(per_image)
    shifted = random_crop(x, 2, g)  # every image is x shifted by ≤ 2 pixels, zeros filling in
    for s, o in zip(shifted, x):
        padded = torch.nn.functional.pad(o, (2, 2, 2, 2))
        assert any(torch.equal(s, padded[:, i:i + 12, j:j + 12]) for i in range(5) for j in range(5))
    cast = color_cast(x, 0.3, g).float() / 255  # gain · x + offset, per image and channel, clipped
    xs = x.float() / 255
    for c in range(3):
        a, b = xs[0, c].flatten(), cast[0, c].flatten()
        inside = (b > 0.01) & (b < 0.99)
        fit = torch.linalg.lstsq(torch.stack([a[inside], torch.ones_like(a[inside])], 1), b[inside, None]).solution
        assert 0.69 <= fit[0].item() <= 1.31 and abs(fit[1].item()) <= 0.16
    assert torch.equal(random_affine(x, 0.5, g, p=0.0), x)
    warped = random_affine(torch.full((2, 1, 16, 16), 200, dtype=torch.uint8), 1.0, g)
    assert warped[:, :, 6:10, 6:10].eq(200).all()  # the middle stays; only corners may fall outside


def test_augment_settings_parse_and_bad_ones_are_user_errors() -> None:
    assert parse_augment("").active == () and parse_augment("none").active == ()
    assert parse_augment(True).active == ("flip", "crop", "color", "affine")
    cfg = parse_augment("flip=0.25, crop=2")
    assert cfg == AugmentConfig(flip=0.25, crop=2.0)
    for bad, message in (("flips", "Did you mean: flip"), ("crop=x", "must be a number"), ("flip=2", "out of range")):
        with pytest.raises(UserError, match=message):
            parse_augment(bad)


@pytest.mark.parametrize("affine", [True, False])
def test_hand_written_batch_norm_matches_torch_in_train_and_eval(affine) -> None:
    torch.manual_seed(0)
    ref = torch.nn.BatchNorm2d(6, momentum=0.2).double()
    mine = ManualBatchNorm2d(6, momentum=0.2).double()
    if affine:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 2)
            ref.bias.uniform_(-1, 1)
    mine.load_state_dict(ref.state_dict())
    for _ in range(4):  # training mode: batch statistics, running averages updated
        x = torch.randn(8, 6, 5, 7, dtype=torch.float64) * 3 + 2
        assert torch.allclose(mine(x), ref(x), atol=1e-12)
        out = mine(x)
        assert torch.allclose(out.mean(dim=(0, 2, 3)), mine.bias, atol=1e-10)  # per channel: mean β ...
        assert torch.allclose(out.std(dim=(0, 2, 3), unbiased=False), mine.weight.abs(), atol=1e-4)  # ... std |γ|
        ref(x)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.allclose(getattr(mine, name).double(), getattr(ref, name).double(), atol=1e-12), name
    ref.eval(), mine.eval()
    x = torch.randn(3, 6, 5, 7, dtype=torch.float64)
    assert torch.allclose(mine(x), ref(x), atol=1e-12)
    assert torch.allclose(mine(x[:1]), ref(x)[:1], atol=1e-12)  # eval: an image's output ignores its batch
    x.requires_grad_(True)  # gradients agree too (autograd through the hand-written forward)
    mine.train(), ref.train()
    g1 = torch.autograd.grad(mine(x).pow(2).sum(), x)[0]
    g2 = torch.autograd.grad(ref(x).pow(2).sum(), x)[0]
    assert torch.allclose(g1, g2, atol=1e-9)


def test_batch_norm_function_leaves_running_stats_alone_in_eval() -> None:
    x = torch.randn(4, 3, 2, 2)
    rm, rv = torch.zeros(3), torch.ones(3)
    y = batch_norm_2d(x, torch.ones(3), torch.zeros(3), rm, rv, training=False)
    assert torch.allclose(y, x / (1 + 1e-5) ** 0.5) and rm.eq(0).all() and rv.eq(1).all()


TINY = ["n_train=100", "n_val=32", "batch_size=16", "log_every=2"]


def test_an_augmented_run_resumes_exactly() -> None:
    from dlcourse_tui.engine.checkpoint import load_checkpoint
    from dlcourse_tui.engine.runs import find_run
    from dlcourse_tui.lessons import find_lesson
    from helpers import metric_numbers, run_to_end

    cfg = find_lesson("training-techniques").config(variant="all", sets=TINY, overrides={"train.epochs": 3})

    full, _, _ = run_to_end(cfg)
    cut, stopped, _ = run_to_end(cfg, stop_after_step=5)
    assert stopped.status == "stopped" and stopped.step == 6
    resumed, final, _ = run_to_end(cfg, resume=find_run(cut.id))
    assert final.status == "completed"

    assert metric_numbers(resumed) == metric_numbers(full)
    a = load_checkpoint(full.path / "checkpoint.pt")["task"]
    b = load_checkpoint(resumed.path / "checkpoint.pt")["task"]
    assert torch.equal(a["augment"]["generator"], b["augment"]["generator"])
    for k in a["modules"]["model"]:
        assert torch.equal(a["modules"]["model"][k], b["modules"]["model"][k]), k
    pictures = {p.stem for p in full.record.pictures()}
    assert {"augmented", "activation_stats", "filters"} <= pictures


def test_augment_on_points_data_is_a_user_error(dlc) -> None:
    r = dlc("run", "single-neuron", "--set", "n_train=20", "--epochs", "1")  # no augment: fine
    assert r.code == 0
    from dlcourse_tui.engine.session import prepare_run
    from dlcourse_tui.lessons import find_lesson

    cfg = find_lesson("training-techniques").config(sets=TINY + ["augment=flip"], overrides={"data.name": "shapes"})
    prepare_run(cfg)  # images: fine
    from dataclasses import replace

    with pytest.raises(UserError, match="augmentation is for images"):
        prepare_run(replace(cfg, data="blobs", model="mlp", task_args={"augment": "flip"}))


def test_grid_runs_one_run_per_arm_and_prints_the_comparison(dlc) -> None:
    r = dlc("run", "training-techniques", "--grid", "--epochs", "2", *[a for s in TINY for a in ("--set", s)], "--json")
    assert r.code == 0, r.out + r.err
    summary = json.loads(r.out[r.out.index("{"):])
    variants = ["baseline", "dropout", "augment", "batchnorm", "all"]
    assert [a["variant"] for a in summary["arms"]] == variants
    runs = list_runs()
    assert len(runs) == len(variants)
    assert sorted(r.config["variant"] for r in runs) == sorted(variants)
    assert {r.config["train"]["seed"] for r in runs} == {0}
    assert all(r.status == "completed" for r in runs)
    for arm in summary["arms"]:
        assert 0 <= arm["val_acc"] <= 1 and arm["gap"] == pytest.approx(arm["train_acc"] - arm["val_acc"])
    assert "validation accuracy per arm" in r.err and "epochs to" in r.err and "grid time" in r.err
    for name in variants:
        assert name in r.err


def test_grid_refuses_variant_and_resume(dlc) -> None:
    r = dlc("run", "training-techniques", "--grid", "--variant", "all")
    assert r.code == 2 and "--grid runs every variant" in (r.out + r.err)
    r = dlc("run", "mlp-backprop", "--grid")  # a lesson without variants
    assert r.code == 2 and "no variants" in (r.out + r.err)


def test_pictures_show_the_augmented_grid_and_activation_statistics() -> None:
    from dlcourse_tui.models.registry import create_model
    from dlcourse_tui.tasks.techniques import activation_stats_picture, augmented_grid, layer_statistics

    image = _images()[0]
    grid = augmented_grid(image, parse_augment(ALL))
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    assert grid.shape[0] > 4 * grid.shape[1] // 8  # five rows (four alone, all together) of eight cells
    x = torch.randn(32, 3, 32, 32)
    plain = create_model("cnn", input_shape=(3, 32, 32), num_classes=10, args={"channels": (4, 8)})
    bn = create_model("cnn", input_shape=(3, 32, 32), num_classes=10, args={"channels": (4, 8), "batch_norm": True})
    assert [k for _, k, _, _ in layer_statistics(plain, x)] == ["conv", "conv"]
    assert [k for _, k, _, _ in layer_statistics(bn, x)] == ["conv", "bn", "conv", "bn"]
    bn.train()
    stats = layer_statistics(bn, x)  # eval mode inside, training mode restored after
    assert bn.training and len(stats) == 4
    pic = activation_stats_picture(bn, x)
    assert pic is not None and pic.dtype == np.uint8 and pic.ndim == 3
