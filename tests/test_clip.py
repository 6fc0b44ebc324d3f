"""CLIP (lesson 17): symmetric InfoNCE against a hand loop, the clamped temperature, held-out
colour-shape pairs absent from every training caption, a tiny run's tables and the interface
the BLIP-2 bridge builds on, and bad prompts refused in one sentence."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlcourse_tui.data.scenes import COLOUR_NAMES
from dlcourse_tui.data.shapes import SHAPE_CLASSES
from dlcourse_tui.engine.checkpoint import load_checkpoint
from dlcourse_tui.engine.events import TableReady
from dlcourse_tui.engine.session import prepare_run
from dlcourse_tui.lessons import find_lesson
from dlcourse_tui.models.clip import clip_from_settings, clip_loss
from dlcourse_tui.models.registry import create_model
from dlcourse_tui.tasks.contrastive import TEMPLATES, held_out_pairs
from tests.helpers import run_to_end

TINY = ["n_train=300", "n_val=200", "batch_size=64", "log_every=1", "threads=1", "model.image_width=16",
        "model.text_width=16", "model.embed_dim=16", "model.heads=2", "model.text_layers=1"]


def lesson_config(*sets: str, epochs: int = 1):
    return find_lesson("clip").config(sets=[*TINY, *sets], overrides={"train.epochs": epochs})


def test_symmetric_infonce_is_the_mean_of_both_cross_entropies_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    u = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    v = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    s = 7.0
    image_side = text_side = 0.0
    for i in range(5):  # image i picks its caption among all five, caption i its image
        image_side -= math.log(math.exp(s * float(u[i] @ v[i])) / sum(math.exp(s * float(u[i] @ v[j])) for j in range(5)))
        text_side -= math.log(math.exp(s * float(v[i] @ u[i])) / sum(math.exp(s * float(v[i] @ u[j])) for j in range(5)))
    assert float(clip_loss(u, v, s)) == pytest.approx((image_side + text_side) / 10, rel=1e-5)
    logits = s * u @ v.T
    both = (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.T, torch.arange(5))) / 2
    assert float(clip_loss(u, v, s)) == pytest.approx(float(both), rel=1e-6)


def test_the_temperature_starts_at_1_over_0_07_and_the_scale_is_clamped_at_100() -> None:
    model = create_model("clip", input_shape=(3, 32, 32), num_classes=20)
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1000.0))
    assert model.scale().item() == pytest.approx(100.0)
    x, ids = torch.randn(3, 3, 32, 32), torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0], [1, 8, 9, 2]])
    assert model(x, ids).abs().max() <= 100.0 + 1e-4  # cosine ≤ 1, times at most 100


def test_held_out_pairs_never_appear_in_training_captions_and_every_shape_and_colour_still_does() -> None:
    held = held_out_pairs(0.2, len(COLOUR_NAMES), len(SHAPE_CLASSES))
    assert len(held) == 24
    assert {s for _, s in held} == set(range(10)) and max(sum(s == k for _, s in held) for k in range(10)) <= 3
    task = prepare_run(lesson_config("n_train=600")).task
    words = [f"{COLOUR_NAMES[c]} {SHAPE_CLASSES[s]}" for c, s in task.held]
    train = task.data.train.extras["captions"]
    used = [train[i] for i in task.train_idx.tolist()]
    assert len(used) < len(train)  # some scenes were dropped
    assert not any(w in c for c in used for w in words)
    decoded = {task.vocab.decode(row) for batch in task.batches(0) for row in batch[1]}  # what training reads
    assert not any(w in c for c in decoded for w in words)
    assert {w for c in used for w in c.split()} >= set(SHAPE_CLASSES) | set(COLOUR_NAMES) - {"gray"}
    assert all(task.data.val.extras["box_labels"][int(i), 0] >= 0 for i in task.test_idx)


def test_a_tiny_run_makes_its_tables_and_saves_what_the_bridge_loads() -> None:
    store, final, events = run_to_end(lesson_config())
    assert final.status == "completed"
    assert {"val_zeroshot", "val_probe", "val_ratio", "val_loss"} <= set(final.metrics)
    tables = {e.name: e for e in events if isinstance(e, TableReady)}
    assert [row[0] for row in tables["prompts"].rows] == list(TEMPLATES)  # one row per template
    assert tables["zero_shot_vs_probe"].rows[0][3] == f"{final.metrics['val_ratio']:.2f}"
    config = store.record.config
    state = load_checkpoint(store.record.checkpoint)["task"]
    model = clip_from_settings(config["model"], len(state["vocab"]))
    model.load_state_dict(state["modules"]["model"])
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    assert model.encode_image_tokens(x).shape == (2, 4, model.image_dim) and model.image_dim == 16
    assert torch.allclose(model.encode_image(x).norm(dim=1), torch.ones(2))
    ids = torch.tensor([[1, state["vocab"].index("circle"), 2]])
    assert model.encode_text(ids).shape == (1, 16)


def test_bad_prompts_are_refused_in_one_sentence(dlc) -> None:
    r = dlc("run", "clip", "--set", "n_train=100", "--set", "n_val=100", "--set", "prompt=a drawing of a {shape}")
    assert r.code == 2
    message = " ".join(r.err.split())
    assert message.startswith("dlc: task.prompt 'a drawing of a {shape}' uses 'drawing', which the model's vocabulary")
    assert message.count(". ") <= 2 and "Use only words such as" in message
    r = dlc("run", "clip", "--set", "n_train=100", "--set", "n_val=100", "--set", "prompt=a photo of a circle")
    assert r.code == 2 and "must hold {shape} exactly once" in r.err
    assert dlc("runs", "list").out.count("clip") == 0  # nothing written
