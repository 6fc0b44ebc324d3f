"""Diagnoses over a run's own metrics, and the expected band a lesson ships."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dlcourse_tui.course.diagnostics import diagnose
from dlcourse_tui.course.reference import Band, Reference, load_reference, make_band, quantile
from dlcourse_tui.lessons import find_lesson

CFG = {"lesson": "single-neuron", "train": {"lr": 0.1}, "data": {"name": "shapes"}, "model": {"name": "neuron"}}


def lines(train_acc, val_acc, *, losses=None, val_loss=None, extra=None):
    """metrics.jsonl lines: 10 steps per epoch, one epoch and one eval line per epoch."""
    out = []
    losses = losses or [1.0 - 0.01 * i for i in range(10 * len(val_acc))]
    for i, loss in enumerate(losses):
        out.append({"type": "step", "step": i + 1, "epoch": i // 10 + 1, "loss": loss, **(extra or {})})
    for e, (t, v) in enumerate(zip(train_acc, val_acc), start=1):
        out.append({"type": "epoch", "step": 10 * e, "epoch": e, "train_acc": t, "train_loss": 1.0 / e})
        out.append({"type": "eval", "step": 10 * e, "epoch": e, "val_acc": v,
                    "val_loss": (val_loss or [1.0] * len(val_acc))[e - 1]})
    return out


def rules(found) -> list[str]:
    return [d.rule for d in found]


def test_a_growing_gap_is_overfitting_and_points_to_the_lesson() -> None:
    lesson = find_lesson("single-neuron")
    found = diagnose(lines([0.6, 0.8, 0.95, 1.0], [0.58, 0.7, 0.72, 0.7]), CFG, lesson)
    [d] = [d for d in found if d.rule == "overfitting"]
    assert d.sentence == ("Overfitting: at epoch 4 training accuracy is 100.0% and validation 70.0%; the gap grew from "
                          "2 to 30 points since epoch 1.")
    assert d.section and d.section in lesson.body  # a heading of the lesson explains it
    assert "overfitting" not in rules(diagnose(lines([0.6, 0.8, 0.9], [0.58, 0.78, 0.88]), CFG))


def test_a_diverging_a_flat_and_a_chance_run_are_each_named() -> None:
    rising = [1.0 - 0.1 * i for i in range(5)] + [0.6 + 0.4 * i for i in range(15)]
    assert "diverging" in rules(diagnose(lines([0.5, 0.5], [0.5, 0.5], losses=rising), CFG))
    flat = diagnose(lines([0.1, 0.1], [0.1, 0.1], losses=[2.3026] * 20), CFG)
    assert rules(flat) == ["flat", "chance"]
    assert "chance for 10 classes (10.0%), since epoch 1" in flat[1].sentence
    assert "chance" not in rules(diagnose(lines([0.5, 0.6], [0.4, 0.6]), CFG))


def test_a_discriminator_that_wins_is_named() -> None:
    gan = {**CFG, "data": {"name": "digits"}}
    found = diagnose(lines([], [], losses=[0.1] * 30, extra={"d_acc_real": 0.99, "d_acc_fake": 0.98, "loss_g": 12.0}), gan)
    assert "d-wins" in rules(found)
    sharp = diagnose(lines([], [], losses=[0.1] * 30, extra={"d_acc_real": 0.99, "d_acc_fake": 0.98, "loss_g": 2.5}), gan)
    assert "d-wins" not in rules(sharp)  # a sharp D against a G that still learns
    even = diagnose(lines([], [], losses=[0.7] * 30, extra={"d_acc_real": 0.6, "d_acc_fake": 0.55}), gan)
    assert "d-wins" not in rules(even)


def test_a_run_below_the_expected_band_names_the_knob_that_differs() -> None:
    lesson = find_lesson("single-neuron")
    band = Band((1, 2, 3), (0.8, 0.9, 0.95), (0.75, 0.85, 0.92), (0.85, 0.93, 0.97))
    ref = Reference("test", (0, 1), {}, {"val_acc": band})
    cfg = {**CFG, "train": {"lr": 1.0}, "data": {"name": "blobs"}}
    [d] = [d for d in diagnose(lines([0.6, 0.6, 0.6], [0.8, 0.6, 0.6]), cfg, lesson, ref) if d.rule == "band"]
    assert d.sentence.startswith("Validation acc is below the expected band since epoch 2 (60.0% at epoch 3; "
                                 "runs of the default config give 92.0%–97.0% there).")
    assert "The learning rate is 10× the default (1 vs 0.1)." in d.sentence
    inside = diagnose(lines([0.8, 0.9, 0.95], [0.8, 0.9, 0.95]), cfg, lesson, ref)
    assert "band" not in rules(inside)
    # just past the 10 % edge, as the worst of the band's own seeds often ends: no news
    edge = diagnose(lines([0.6, 0.6, 0.6], [0.74, 0.84, 0.91]), cfg, lesson, ref)
    assert "band" not in rules(edge)
    # past it by more than half the edge's distance to the median (0.92 - 0.015): a diagnosis
    past = diagnose(lines([0.6, 0.6, 0.6], [0.7, 0.8, 0.9]), cfg, lesson, ref)
    assert "band" in rules(past)


def test_bands_are_median_and_10_90_quantiles_as_numpy_has_them() -> None:
    import numpy as np

    values = [0.3, 0.9, 0.5, 0.7, 0.1]
    for q in (0.1, 0.5, 0.9):
        assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)))
    band = make_band([{1: 0.1, 2: 0.2}, {1: 0.3, 2: 0.4, 3: 0.9}, {1: 0.5, 2: 0.6}])
    assert band.epochs == (1, 2) and band.median == (0.3, 0.4)


def test_make_references_writes_a_band_that_runs_show_draws(dlc, tmp_path) -> None:
    out = tmp_path / "ref"
    r = subprocess.run([sys.executable, "bench/make_references.py", "single-neuron", "--seeds", "0", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=find_lesson("single").folder.parent.parent)
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "reference.json").read_text())
    assert data["made_by"] == "python bench/make_references.py single-neuron --seeds 0 1" and data["seeds"] == [0, 1]
    ref = load_reference(out)
    assert ref is not None and len(ref.bands["val_acc"].epochs) == 30
    assert all(lo <= mid <= hi for lo, mid, hi in zip(ref.bands["val_acc"].p10, ref.bands["val_acc"].median,
                                                       ref.bands["val_acc"].p90))


def test_runs_show_draws_the_band_and_a_headless_run_keeps_its_diagnoses(dlc, tmp_path, monkeypatch) -> None:
    from test_walkthrough import make_lesson

    root = make_lesson(tmp_path / "extra", body="\n## What to watch in the curves\n\ntext\n")
    band = {"epochs": [1, 2, 3], "median": [0.99, 0.99, 0.99], "p10": [0.98, 0.98, 0.98], "p90": [1.0, 1.0, 1.0]}
    (root / "90-walk" / "reference.json").write_text(json.dumps({"made_by": "test", "metrics": {"val_acc": band}}))
    monkeypatch.setenv("DLC_LESSONS", str(root))
    r = dlc("run", "walk", "--set", "lr=0.00001", "--set", "epochs=3", "--set", "n_train=40", "--set", "threads=1",
            "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert any("below the expected band since epoch" in d and "1/10000 of the default" in d
               and "What to watch in the curves" in d for d in summary["diagnoses"]), summary.get("diagnoses")
    show = dlc("runs", "show", summary["run_id"], "--no-pictures")
    assert "expected p10" in show.out and "diagnosis: Validation acc is below the expected band" in show.out


def test_every_lesson_ships_a_band_made_from_its_current_default() -> None:
    """A band made from another config than the lesson's default would mislead: each
    lesson's reference.json says how it was made, over several seeds, from the default as it is now."""
    from dlcourse_tui.lessons import builtin_lessons_dir, load_lessons

    root = builtin_lessons_dir().resolve()
    lessons = [l for l in load_lessons() if l.folder.resolve().parent == root]
    shipped = {l.id for l in lessons if (l.folder / "reference.json").is_file()}
    assert shipped == {l.id for l in lessons}, "lessons without a band: make one with bench/make_references.py"
    for lesson in lessons:
        if lesson.id not in shipped:
            continue
        data = json.loads((lesson.folder / "reference.json").read_text())
        ref = load_reference(lesson.folder)
        assert ref is not None and len(ref.seeds) >= 3, lesson.id
        assert data["made_by"].startswith(f"python bench/make_references.py {lesson.id} --seeds"), lesson.id
        made, now = dict(data["config"]), lesson.config().to_dict()
        for cfg in (made, now):
            cfg["train"] = {k: v for k, v in cfg["train"].items() if k not in ("seed", "device")}
        assert made == now, f"{lesson.id}: its default changed since reference.json was made; rerun {data['made_by']}"
        target = lesson.target.metric if lesson.target else "val_acc"
        band = ref.bands[target]
        assert band.epochs and all(lo <= mid <= hi for lo, mid, hi in zip(band.p10, band.median, band.p90)), lesson.id
