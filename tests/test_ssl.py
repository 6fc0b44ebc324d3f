"""The self-supervised lesson: its losses against independent slow implementations, the
pretext tasks, that no label reaches pretraining, its two phases, its table, bad input,
and a resumed run equal to an uninterrupted one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from dlcourse_tui.engine.session import prepare_run
from dlcourse_tui.errors import UserError
from dlcourse_tui.lessons import find_lesson
from dlcourse_tui.tasks.ssl_losses import BN_EPS, barlow_twins_loss, byol_loss, embedding_std, nt_xent
from dlcourse_tui.tasks.ssl_pretext import (
    at_tile_scale, hamming_permutations, jigsaw_tiles, max_permutations, min_hamming, rotate_all, shuffle_tiles,
)
from helpers import run_to_end

LESSON = find_lesson("self-supervised")
TINY = {"n_train": 100, "n_val": 32, "batch_size": 25, "log_every": 1, "threads": 1, "probe_iters": 2,
        "probe_views": 1, "proj_hidden": 32, "proj_dim": 16}
TINY_CNN = {"model.channels": [8, 16, 16, 16]}


def tiny_config(variant: str = "", epochs: int = 3, **sets):
    return LESSON.config(variant=variant, sets=[f"{k}={v}" for k, v in {**TINY, **sets}.items()],
                         overrides={"train.epochs": epochs, "train.device": "cpu", **TINY_CNN})


# ---------------------------------------------------------------------------- the losses
def slow_nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """SimCLR eq. (1) with loops: ℓ(i, j) = −log exp(s_ij/τ) / Σ_{k≠i} exp(s_ik/τ), mean over the 2N anchors."""
    views = list(z1) + list(z2)
    n = len(z1)

    def s(a, b):
        return float(a @ b) / (float(a.norm()) * float(b.norm()))

    total = 0.0
    for i, zi in enumerate(views):
        j = (i + n) % (2 * n)
        denominator = sum(math.exp(s(zi, zk) / tau) for k, zk in enumerate(views) if k != i)
        total += -math.log(math.exp(s(zi, views[j]) / tau) / denominator)
    return total / (2 * n)


def test_nt_xent_is_simclr_equation_1() -> None:
    g = torch.Generator().manual_seed(0)
    for n, d, tau in ((2, 3, 0.5), (5, 4, 0.2), (7, 8, 1.0)):
        z1, z2 = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
        assert nt_xent(z1, z2, tau).item() == pytest.approx(slow_nt_xent(z1, z2, tau), rel=1e-6)
    # two views pointing the same way, the other images orthogonal: only the positive is similar
    z = torch.eye(4, dtype=torch.float64)
    expected = -math.log(math.exp(1 / 0.1) / (math.exp(1 / 0.1) + 6 * math.exp(0.0)))
    assert nt_xent(z, z, 0.1).item() == pytest.approx(expected, rel=1e-3)  # float32 logits


def test_byol_loss_is_equation_2_by_hand_and_leaves_the_target_alone() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    z = torch.tensor([[3.0, 0.0], [1.0, 1.0]], requires_grad=True)
    loss = byol_loss(q, z)  # ‖q̄ − z̄‖²: 0 for the first pair, 2 − 2·cos 45° = 2 − √2 for the second
    assert loss.item() == pytest.approx((0 + 2 - math.sqrt(2)) / 2, rel=1e-6)
    loss.backward()
    assert z.grad is None and q.grad is not None


def slow_barlow(z1: torch.Tensor, z2: torch.Tensor, lam: float) -> float:
    """Barlow Twins eq. (1) with loops over the batch and the dimensions."""
    n, d = z1.shape

    def normalised(z, i):
        col = [float(z[b, i]) for b in range(n)]
        mean = sum(col) / n
        var = sum((v - mean) ** 2 for v in col) / n
        return [(v - mean) / math.sqrt(var + BN_EPS) for v in col]

    a = [normalised(z1, i) for i in range(d)]
    b = [normalised(z2, j) for j in range(d)]
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[i][k] * b[j][k] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lam * c ** 2
    return loss


def test_barlow_twins_loss_is_equation_1() -> None:
    g = torch.Generator().manual_seed(1)
    for n, d, lam in ((4, 3, 0.005), (9, 5, 0.5)):
        z1, z2 = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
        assert barlow_twins_loss(z1, z2, lam).item() == pytest.approx(slow_barlow(z1, z2, lam), rel=1e-5)
    # identical views with uncorrelated dimensions: C = I, so the loss is (almost) 0
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    assert barlow_twins_loss(z, z, 1.0).item() == pytest.approx(0.0, abs=1e-4)


def test_collapse_monitor_reads_0_when_collapsed_and_1_over_root_d_when_spread() -> None:
    assert embedding_std(torch.ones(16, 8) * torch.tensor([1.0, 2, 3, 4, 5, 6, 7, 8])).item() == pytest.approx(0, abs=1e-6)
    z = torch.randn(4000, 64, generator=torch.Generator().manual_seed(2))
    assert embedding_std(z).item() == pytest.approx(1 / 8, rel=0.05)


# ---------------------------------------------------------------------------- pretext tasks
def test_rotnet_shows_all_four_rotations_of_every_image() -> None:
    x = torch.randint(0, 255, (3, 3, 8, 8), dtype=torch.uint8)
    r, k = rotate_all(x)
    assert r.shape == (12, 3, 8, 8) and k.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    for i in range(12):
        assert torch.equal(torch.rot90(r[i], -int(k[i]), dims=(1, 2)), x[i % 3])


def test_jigsaw_permutations_are_far_apart_and_capped_by_what_exists() -> None:
    every = hamming_permutations(2, 24, seed=0)
    assert len({tuple(p) for p in every.tolist()}) == 24 and sorted(every[0].tolist()) == [0, 1, 2, 3]
    assert min_hamming(hamming_permutations(2, 4, seed=0)) == 4  # 4 orderings with every tile elsewhere: a Latin square
    assert min_hamming(hamming_permutations(3, 30, seed=0)) >= 7  # of 9 tiles: no two of the 30 near-twins
    assert max_permutations(3) == 362880
    with pytest.raises(UserError, match="24 orderings"):
        hamming_permutations(2, 25, seed=0)


def test_jigsaw_tiles_are_standardised_and_shown_in_the_permutations_order() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (5, 3, 32, 32), dtype=torch.uint8)
    tiles = jigsaw_tiles(x, 2, g)
    assert tiles.shape == (5, 4, 3, 16, 16)
    assert tiles.mean(dim=(3, 4)).abs().max() < 1e-4  # each tile and channel on its own
    perms = hamming_permutations(2, 24, seed=0)
    shown, k = shuffle_tiles(tiles, perms, g)
    for b in range(5):
        for slot in range(4):
            assert torch.equal(shown[b, slot], tiles[b, perms[k[b], slot]])
    # the probe reads the whole image as the tiles showed it: 3×3 tiles of 8 px enlarged to 16, so 2×, standardised
    whole = at_tile_scale(x, 3)
    assert whole.shape == (5, 3, 64, 64) and whole.mean(dim=(2, 3)).abs().max() < 1e-4


# ---------------------------------------------------------------------------- no labels
class Poisoned(torch.Tensor):
    """Labels no operation may touch: any use raises."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise AssertionError(f"a label was read during pretraining ({getattr(func, '__name__', func)})")


def pretrain(config, poison: bool) -> dict:
    """Every pretraining step of `config`, the labels of the training split poisoned or not:
    the encoder's and the heads' final weights."""
    from dataclasses import replace

    task = prepare_run(config).task
    if poison:
        y = torch.zeros(len(task.data.train), dtype=torch.long).as_subclass(Poisoned)
        task.data = replace(task.data, train=replace(task.data.train, y=y))
    task.train(True)
    for epoch in range(task.pretrain_epochs):
        for batch in task.batches(epoch):
            assert isinstance(batch, torch.Tensor)  # images only
            task.train_step(batch)
    return {k: v.clone() for m in ("encoder", "heads") for k, v in task.modules[m].state_dict().items()}


@pytest.mark.parametrize("variant", ["simclr", "byol", "barlow", "rotnet", "jigsaw", "colorization"])
def test_no_label_reaches_pretraining(variant) -> None:
    """Pretraining with poisoned labels (any use raises) ends bitwise where it ends with the true ones."""
    config = tiny_config(variant, epochs=3, probe_epochs=1)
    clean, poisoned = pretrain(config, poison=False), pretrain(config, poison=True)
    assert clean.keys() == poisoned.keys()
    for k in clean:
        assert torch.equal(clean[k], poisoned[k]), k


# ---------------------------------------------------------------------------- a whole run
def test_a_run_pretrains_then_probes_and_prints_the_table(tmp_path) -> None:
    """Phase 1 then 2 by epoch, the collapse monitor logged while pretraining, the probes on
    h, z and the random-init h after; pictures; the table gathers the baselines' runs."""
    for variant in ("random", "supervised_few", "supervised_all"):
        store, final, _ = run_to_end(tiny_config(variant, epochs=2))
        assert final.status == "completed", variant
    store, final, events = run_to_end(tiny_config("simclr", epochs=3, probe_epochs=1))
    lines = [json.loads(line) for line in (store.path / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in lines if m["type"] == "step"]
    assert [m["phase"] for m in steps] == [1.0] * 8 + [2.0] * 4
    assert all("z_std" in m and "acc" in m for m in steps[:8])
    evals = [m for m in lines if m["type"] == "eval"]
    assert "val_acc" not in evals[1] and {"val_acc", "val_z_acc", "val_random_acc"} <= evals[2].keys()
    assert {p.stem for p in store.record.pictures()} == {"views", "collapse", "pca"}
    table = json.loads((store.path / "tables" / "comparison.json").read_text())
    methods = [row[0] for row in table["rows"]]
    assert methods == ["random", "sup. 10", "sup. all", "simclr *"]
    simclr = table["rows"][-1]
    h = evals[2]["val_acc"]
    assert simclr[2] == f"{h * 100:.1f}%"
    sup_few = json.loads(next(p for p in store.path.parent.iterdir() if p != store.path and json.loads(
        (p / "config.json").read_text())["variant"] == "supervised_few").joinpath("summary.json").read_text())
    assert simclr[5] == f"{(h - sup_few['metrics']['val_acc']) * 100:+.1f}"


@pytest.mark.parametrize("variant", ["rotnet", "jigsaw", "colorization", "byol", "barlow"])
def test_every_method_ends_with_its_probes_pictures_and_row(variant) -> None:
    """Each method's probes read its encoder as it was trained (jigsaw: the whole image at
    the tiles' scale; colorization: grey), and the random-init encoder the same way."""
    store, final, _ = run_to_end(tiny_config(variant, epochs=2, probe_epochs=1))
    assert final.status == "completed"
    metrics = json.loads((store.path / "summary.json").read_text())["metrics"]
    assert {"val_acc", "val_random_acc", "val_knn_acc"} <= metrics.keys()
    assert ("val_z_acc" in metrics) == (variant in ("byol", "barlow"))
    assert {p.stem for p in store.record.pictures()} == {"views", "collapse", "pca"}
    rows = json.loads((store.path / "tables" / "comparison.json").read_text())["rows"]
    assert rows[-1][0] == f"{variant} *" and rows[-1][2] == f"{metrics['val_acc'] * 100:.1f}%"


def _pretraining_lines(store) -> list[dict]:
    lines = [json.loads(line) for line in (store.path / "metrics.jsonl").read_text().splitlines()]
    return [m for m in lines if m.get("phase") == 1.0 or m.get("train_phase") == 1.0]


def test_simclr_finds_the_twin_and_byol_without_predictor_or_ema_collapses() -> None:
    """A few dozen steps: SimCLR picks the other view out of 2B − 1 far above chance, and the
    collapse variant's spread falls while BYOL's stays. Seeds 0-2, AVX-512, AVX2 and the
    default kernels: pair accuracy 0.06-0.13 (chance 0.01); final spread / BYOL's 0.18-0.23."""
    base = {"n_train": 200, "batch_size": 50}
    simclr, _, _ = run_to_end(tiny_config("simclr", epochs=5, probe_epochs=1, **base))
    last = [m for m in _pretraining_lines(simclr) if m["type"] == "epoch"][-1]
    assert last["train_acc"] > 3 / (2 * 50 - 1)
    spread = {}
    for variant in ("collapse", "byol"):
        store, _, _ = run_to_end(tiny_config(variant, epochs=8, probe_epochs=1, **base))
        steps = [m for m in _pretraining_lines(store) if m["type"] == "step"]
        spread[variant] = (steps[0]["z_std"], steps[-1]["z_std"])
    assert spread["collapse"][1] < 0.5 * spread["collapse"][0]
    assert spread["collapse"][1] < 0.4 * spread["byol"][1]


def test_upright_shapes_change_only_the_angles() -> None:
    """data.rotation=180 is the generator as it was; a smaller range draws the same numbers,
    so labels, colours and places stay and only the turn of each object changes."""
    from dlcourse_tui.data.shapes import make_shapes

    default, same, upright = make_shapes(50, seed=3), make_shapes(50, seed=3, rotation=180), make_shapes(50, seed=3, rotation=20)
    assert torch.equal(default.x, same.x) and torch.equal(default.y, upright.y)
    assert not torch.equal(default.x, upright.x)
    assert default.extras["captions"] == upright.extras["captions"]  # size, colour, class and place: none of them the angle


def test_json_and_runs_show_cover_both_phases(dlc) -> None:
    r = dlc("run", "self-supervised", "--json", "--epochs", "3", *[a for k, v in {**TINY, "probe_epochs": 1}.items()
                                                                 for a in ("--set", f"{k}={v}")])
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["status"] == "completed" and {"val_acc", "val_z_acc", "val_random_acc", "val_z_std"} <= summary["metrics"].keys()
    shown = dlc("runs", "show", summary["run_id"], "--no-pictures")
    text = " ".join(shown.out.split())
    assert shown.code == 0 and "linear probes on 10 labelled images" in text and "train_phase 2" in text.replace(": ", " ")


async def test_the_dashboard_shows_the_phase_and_the_table() -> None:
    """A run from the app: its log names phase 1 and phase 2 epoch by epoch, ends with the table."""
    import time

    from textual.widgets import RichLog

    from dlcourse_tui.tui.app import DLCApp
    from dlcourse_tui.tui.screens.dashboard import DashboardScreen

    app = DLCApp(preload_torch=False)
    async with app.run_test(size=(120, 40)) as pilot:
        handle = app.start_run(tiny_config("simclr", epochs=3, probe_epochs=1))
        end = time.monotonic() + 60
        while handle.phase != "completed" or not isinstance(app.screen, DashboardScreen) or \
                not any(getattr(e, "name", "") == "comparison" for e in handle.events):
            assert time.monotonic() < end, handle.phase
            await pilot.pause(0.05)
        await pilot.pause(0.6)  # the dashboard applies events on its timer
        lines = ["".join(seg.text for seg in strip) for strip in app.screen.query_one("#log", RichLog).lines]
        text = "\n".join(lines)
        assert "phase 1" in text and "phase 2" in text and "linear probes" in text


def test_the_probe_phases_loss_is_not_read_as_the_pretraining_loss_diverging() -> None:
    """Colorization's MSE ends near 0.02, the probe's cross-entropy starts near 2: two losses,
    not one that rose. The diagnosis judges each phase's loss on its own."""
    from dlcourse_tui.course.diagnostics import diagnose

    pretrain = [{"type": "step", "step": i + 1, "loss": 0.1 / (i + 1), "phase": 1.0} for i in range(20)]
    probe = [{"type": "step", "step": 21 + i, "loss": 2.0 - 0.05 * i, "phase": 2.0} for i in range(20)]
    config = {"train": {"lr": 0.002}, "data": {"name": "shapes"}}
    assert [d.rule for d in diagnose(pretrain + probe, config)] == []
    rising = [{**m, "loss": 0.5 + 0.1 * i} for i, m in enumerate(probe)]  # a probe whose own loss rises: still said
    assert [d.rule for d in diagnose(pretrain + rising, config)] == ["diverging"]


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("sets", "message"), [
    (["temperature=0"], "temperature=0 is out of range"),
    (["temperature=-0.5"], "temperature=-0.5 is out of range"),
    (["label_fraction=0"], "label_fraction=0 is out of range"),
    (["label_fraction=1.5"], "label_fraction=1.5 is out of range"),
    (["batch_size=1"], "batch_size=1 is too small for simclr: every image needs another one"),
    (["method=barlow", "batch_size=1"], "batch_size=1 is too small for barlow"),
    (["method=jigsaw", "jigsaw_grid=2", "n_permutations=25"], "a 2×2 jigsaw has only 24 orderings"),
    (["method=jigsaw", "jigsaw_grid=3", "n_permutations=400000"], "n_permutations=400000 is out of range"),
])
def test_bad_input_is_one_sentence_exit_2_and_no_run_folder(dlc, dlc_home, sets, message) -> None:
    args = ["run", "self-supervised", "--set", "n_train=100", "--set", "n_val=10"]
    for s in sets:
        args += ["--set", s]
    r = dlc(*args)
    assert r.code == 2, (r.out, r.err)
    assert message in " ".join(r.err.split()), r.err
    assert not (dlc_home / "runs").exists() or not any((dlc_home / "runs").iterdir())


def test_several_processes_are_refused_with_a_sentence(dlc, dlc_home) -> None:
    r = dlc("run", "self-supervised", "--nproc-per-node", "2")
    assert r.code == 2 and "does not run in several processes" in " ".join(r.err.split())
    assert not (dlc_home / "runs").exists()


def test_a_label_fraction_that_labels_nothing_is_refused(tmp_path) -> None:
    with pytest.raises(UserError, match="labels none of them"):
        prepare_run(tiny_config("", label_fraction=0.001))


# ---------------------------------------------------------------------------- resume
CLOCKED = {"time", "val_pretrain_seconds"}
STOPS = [("byol", 2), ("simclr", 6), ("supervised_few", 6)]  # mid-pretraining (EMA target); in the probe; after an eval


def numbers(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in CLOCKED}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_resumed_run_equals_the_uninterrupted_one_in_pretraining_and_probing(dlc, tmp_path, monkeypatch) -> None:
    """Stopped while pretraining, while probing, and after an evaluation; resumed through
    `dlc run --resume` (the config read back from the run folder, every part of the task
    rebuilt from the checkpoint; test_resume shows the engine's resume in a new process);
    metrics and final state bitwise equal."""
    from test_resume import assert_same

    monkeypatch.setenv("DLC_HOME", str(tmp_path / "full"))
    full = {v: run_to_end(tiny_config(v, epochs=2, probe_epochs=1))[0].path for v in dict.fromkeys(v for v, _ in STOPS)}
    monkeypatch.setenv("DLC_HOME", str(tmp_path / "cut"))
    cuts = {}
    for variant, at in STOPS:
        cut, stopped, _ = run_to_end(tiny_config(variant, epochs=2, probe_epochs=1), stop_after_step=at)
        assert stopped.status == "stopped" and stopped.step == at
        cuts[variant, at] = cut.path
    for path in cuts.values():
        r = dlc("run", LESSON.id, "--resume", path.name)
        assert r.code == 0, r.err[-3000:]
    for (variant, at), path in cuts.items():
        assert numbers(path) == numbers(full[variant]), (variant, at)
        a = torch.load(full[variant] / "checkpoint.pt", weights_only=True)
        b = torch.load(path / "checkpoint.pt", weights_only=True)
        a["task"]["ssl"].pop("pretrain_seconds"), b["task"]["ssl"].pop("pretrain_seconds")
        assert_same(a["task"], b["task"], f"{variant}@{at}.task")
        assert_same(a["rng"], b["rng"], f"{variant}@{at}.rng")
