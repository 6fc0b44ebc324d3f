"""Chapter 4's lessons: they load, tiny runs learn, a resumed run equals an uninterrupted one,
the pictures and the worked-example table come out, and the CLI reports them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dlcourse_tui.engine.checkpoint import load_checkpoint
from dlcourse_tui.engine.events import PictureReady, TableReady
from dlcourse_tui.engine.runs import find_run
from dlcourse_tui.engine.session import check_distributable
from dlcourse_tui.lessons import builtin_lessons_dir, load_lesson
from helpers import metric_numbers, run_to_end

FOLDERS = {"recurrent-networks": "10-recurrent-networks", "transformer": "11-transformer",
           "vision-transformer": "12-vision-transformer"}
LESSONS = {name: load_lesson(builtin_lessons_dir() / folder) for name, folder in FOLDERS.items()}  # raises if broken

MEMORY = ["seq_len=8", "n_symbols=4", "key_window=2", "hidden=16", "n_train=500", "n_val=200", "batch_size=32",
          "lr=0.02"]
REVERSE = ["seq_len=4", "n_symbols=4", "d_model=16", "heads=2", "layers=1", "n_train=1000", "n_val=200",
           "batch_size=32", "lr=0.01"]
VIT_DIGITS = ["data.name=digits", "patch_size=7", "d_model=32", "heads=2", "layers=1", "n_train=1000", "n_val=200",
              "batch_size=32", "lr=0.003", "augment="]


def config(lesson: str, sets: list[str], epochs: int, variant: str = "", seed: int = 0):
    return LESSONS[lesson].config(variant=variant, sets=sets + [f"seed={seed}", "threads=1"],
                                  overrides={"train.epochs": epochs, "train.device": "cpu"})


def test_the_three_lessons_are_chapter_four_in_order() -> None:
    assert [(l.chapter, l.order) for l in LESSONS.values()] == [(4, 1), (4, 2), (4, 3)]
    assert LESSONS["recurrent-networks"].task == "sequence" and LESSONS["transformer"].task == "seq2seq"
    assert set(LESSONS["recurrent-networks"].models) == {"rnn", "lstm", "gru"}
    assert LESSONS["vision-transformer"].models == ("vit", "cnn")
    assert LESSONS["transformer"].target.metric == "val_exact_acc"
    for lesson in LESSONS.values():
        assert lesson.summary and "## Walkthrough" in lesson.body
        check_distributable(lesson.config(), 2)  # their tasks split over processes as classify does


# ---------------------------------------------------------------------------- learning


def test_a_gated_network_remembers_the_marked_symbol() -> None:
    _, final, _ = run_to_end(config("recurrent-networks", MEMORY, epochs=4, variant="memory"))
    assert final.status == "completed"
    assert final.metrics["val_acc"] > 0.6, final.metrics  # chance is 0.25; 0.89-0.96 over seeds 0-2


def test_reversal_is_learned_and_without_the_causal_mask_generation_fails() -> None:
    _, masked, _ = run_to_end(config("transformer", REVERSE, epochs=6))
    _, leaky, _ = run_to_end(config("transformer", REVERSE, epochs=6, variant="no-mask"))
    m, n = masked.metrics, leaky.metrics
    # seeds 0-2, masked: generated tokens right 0.79-0.99 (chance 0.25), exact 0.55-0.99
    assert m["val_greedy_acc"] > 0.6 and 0.0 <= m["val_exact_acc"] <= m["val_greedy_acc"], m
    # no mask: teacher-forced tokens 0.74-0.94 but generated 0.57-0.67, exact 0.10-0.19
    assert n["val_acc"] > n["val_greedy_acc"] + 0.05, n
    assert m["val_exact_acc"] > n["val_exact_acc"] + 0.25, (m, n)


def test_the_vit_learns_digits() -> None:
    _, final, _ = run_to_end(config("vision-transformer", VIT_DIGITS, epochs=3))
    assert final.metrics["val_acc"] > 0.3, final.metrics  # chance 0.1; 0.60-0.72 over seeds 0-2 (shifted patches)


# ---------------------------------------------------------------------------- resume


@pytest.mark.parametrize("lesson, sets, variant", [
    ("recurrent-networks", MEMORY + ["n_train=100", "n_val=32", "log_every=2"], "memory"),
    ("transformer", REVERSE + ["n_train=100", "n_val=32", "log_every=2"], ""),
], ids=["sequence", "seq2seq"])
def test_a_resumed_run_equals_an_uninterrupted_one(lesson, sets, variant) -> None:
    cfg = config(lesson, sets, epochs=3, variant=variant)
    full, _, _ = run_to_end(cfg)
    cut, stopped, _ = run_to_end(cfg, stop_after_step=5)  # mid-epoch 2 (4 steps an epoch)
    assert stopped.status == "stopped"
    resumed, final, events = run_to_end(cfg, resume=find_run(cut.id))
    assert final.status == "completed" and events[0].resumed
    assert metric_numbers(resumed) == metric_numbers(full)
    a = load_checkpoint(full.path / "checkpoint.pt")["task"]
    b = load_checkpoint(resumed.path / "checkpoint.pt")["task"]
    for k, v in a["modules"]["model"].items():
        assert torch.equal(v, b["modules"]["model"][k]), k


# ---------------------------------------------------------------------------- pictures and tables


def _pictures(cfg) -> tuple[dict[str, np.ndarray], list[TableReady], object]:
    store, final, events = run_to_end(cfg)
    assert final.status == "completed", getattr(final, "message", "")
    pics = {e.name: e.pixels for e in events if isinstance(e, PictureReady)}
    for name, pix in pics.items():
        assert pix.dtype == np.uint8 and pix.ndim == 3 and pix.shape[2] == 3, name
    assert {p.stem for p in store.record.pictures()} >= set(pics)
    return pics, [e for e in events if isinstance(e, TableReady)], final


def test_recurrent_pictures_hidden_states_and_gradients_per_step() -> None:
    pics, tables, final = _pictures(config("recurrent-networks", ["n_train=100", "n_val=16", "batch_size=32",
                                                                   "hidden=16"], epochs=1))
    assert set(pics) == {"hidden_states", "step_gradients"} and not tables
    assert pics["step_gradients"].shape[1] >= 28 * 2  # one bar per row of the digit
    assert "val_grad_decades_lost" in final.metrics


def test_transformer_pictures_and_the_worked_example() -> None:
    pics, tables, _ = _pictures(config("transformer", REVERSE + ["n_train=100", "n_val=16"], epochs=1))
    assert set(pics) == {"encoder_attention", "decoder_attention", "cross_attention"}
    [table] = tables
    assert [r[1:4] for r in table.rows] == [("112", "14", "0.88"), ("96", "12", "0.12")]
    # one row of maps per layer, one column per head: 1 layer × 2 heads of 4×4 maps
    h, w, _ = pics["cross_attention"].shape
    assert w > h > 0


def test_vit_pictures_cls_attention_and_rollout() -> None:
    sets = VIT_DIGITS + ["n_train=100", "n_val=16", "layers=2", "task.rollout=true"]
    pics, _, _ = _pictures(config("vision-transformer", sets, epochs=1))
    assert {"cls_attention", "attention_rollout"} <= set(pics)
    # cls_attention: a row of cells per image and layer (2 × 2), columns the image and 2 heads;
    # the rollout: a row per image (2), columns the image and the rollout to each of 2 layers
    (ch, cw, _), (rh, rw, _) = pics["cls_attention"].shape, pics["attention_rollout"].shape
    assert cw == rw and 1.6 * rh < ch < 2.0 * rh, (ch, rh)


def test_headless_json_and_runs_show(dlc) -> None:
    r = dlc("run", "transformer", *[a for s in REVERSE + ["n_train=100", "n_val=16"] for a in ("--set", s)],
            "--epochs", "1", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out[r.out.index("{"):])
    assert {"val_exact_acc", "val_loss", "val_greedy_acc"} <= set(summary["metrics"])
    shown = dlc("runs", "show", summary["run_id"])
    assert shown.code == 0, shown.err
    assert "exact" in shown.out and "cross_attention" in shown.out
