"""Chapter 5, unlearning: the diffusion U-Net's null class and label dropout (with the
defaults, the diffusion lesson builds and draws exactly what it did before), ESD's target,
and the fine-tuning that erases one class while its frozen copy stays as it was."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from dlcourse_tui.engine.runs import find_run, list_runs
from dlcourse_tui.engine.session import prepare_run
from dlcourse_tui.errors import UserError
from dlcourse_tui.lessons import find_lesson
from dlcourse_tui.models.unet import ResBlock, UNet
from dlcourse_tui.tasks.unlearn import esd_target

TINY = {"n_train": 64, "n_val": 32, "batch_size": 16, "timesteps": 8, "channels": 8}


def tiny(lesson: str, **sets: object):
    s = [f"{k}={v}" for k, v in {**TINY, **sets}.items()]
    return find_lesson(lesson).config(sets=s, overrides={"train.epochs": 1})


def unlearn_task(**sets: object):
    return prepare_run(tiny("unlearning", steps=4, judge_per_class=2, sample_steps=4, **sets)).task


# ---------------------------------------------------------------------------- the null class and label dropout


def unet_as_it_was(seed: int, c: int = 32, classes: int = 10) -> dict[str, torch.Tensor]:
    """The U-Net's parameters as its constructor made them before the null class existed: the
    same modules created in the same order from the same seed (what the diffusion lesson's
    reference band and resumed runs were made with)."""
    torch.manual_seed(seed)
    emb, ch = 4 * c, 4
    parts = {
        "time_mlp": torch.nn.Sequential(torch.nn.Linear(c, emb), torch.nn.SiLU(), torch.nn.Linear(emb, emb)),
        "class_emb": torch.nn.Embedding(classes, emb),
        "inc": torch.nn.Conv2d(ch, c, 3, padding=1),
        "down1": ResBlock(c, c, emb),
        "pool": torch.nn.Conv2d(c, c, 3, stride=2, padding=1),
        "down2": ResBlock(c, 2 * c, emb),
        "mid": ResBlock(2 * c, 2 * c, emb),
        "up2": ResBlock(4 * c, 2 * c, emb),
        "up1": ResBlock(3 * c, c, emb),
        "out": torch.nn.Sequential(torch.nn.GroupNorm(8, c), torch.nn.SiLU(), torch.nn.Conv2d(c, ch, 3, padding=1)),
    }
    return {f"{name}.{k}": v for name, m in parts.items() for k, v in m.state_dict().items()}


def test_the_diffusion_lessons_default_u_net_is_built_exactly_as_before() -> None:
    task = prepare_run(find_lesson("diffusion").config(sets=["n_train=100", "n_val=16"])).task
    assert task.label_dropout == 0.0 and not task.model.cfg.null_class
    assert task.num_params() == 376_804  # the count its runs print (the null class adds one row of 128)
    for seed in (0, 1):
        torch.manual_seed(seed)
        built = UNet(UNet.Config()).state_dict()
        was = unet_as_it_was(seed)
        assert list(built) == list(was)
        assert all(torch.equal(built[k], was[k]) for k in was), seed
    with_null = UNet(UNet.Config(null_class=True))
    assert with_null.class_emb.weight.shape == (11, 128)  # ∅ is row 10
    with pytest.raises(ValueError, match="null_class=true needs conditional=true"):
        UNet.Config(conditional=False, null_class=True)


def test_label_dropout_replaces_labels_by_the_null_class_at_the_rate_asked_and_never_at_zero() -> None:
    y = torch.arange(20_000) % 10
    plain = prepare_run(tiny("diffusion")).task
    state = torch.get_rng_state()
    assert plain.drop_labels(y) is y
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn: the default run's stream is as it was
    for p in (0.1, 0.5):
        task = prepare_run(tiny("diffusion", label_dropout=p, null_class="true")).task
        out = task.drop_labels(y)
        dropped = out == 10
        assert abs(dropped.float().mean().item() - p) < 0.015
        assert torch.equal(out[~dropped], y[~dropped])  # the others keep their own label
    seen = []  # and the training step hands the dropped labels to the network
    forward = task.model.forward
    task.model.forward = lambda x, t, labels=None: (seen.append(labels), forward(x, t, labels))[1]
    task.train_step((task.data.train.x[:16], task.data.train.y[:16]))
    assert (seen[0] == 10).any() and ((seen[0] == 10) | (seen[0] == task.data.train.y[:16])).all()
    with pytest.raises(UserError, match=r"^task.label_dropout=0.1 replaces labels by the null class, which this model "
                                        r"lacks; add --set null_class=true \(and keep conditional=true\)\.$"):
        prepare_run(tiny("diffusion", label_dropout=0.1))


# ---------------------------------------------------------------------------- ESD


def test_esd_target_by_hand() -> None:
    eps_null = torch.tensor([1.0, 0.0, -2.0])
    eps_c = torch.tensor([3.0, -2.0, -2.0])
    assert esd_target(eps_null, eps_c, 1.0).tolist() == [-1.0, 2.0, -2.0]  # 1 − (3 − 1), 0 − (−2 − 0), no direction
    assert esd_target(eps_null, eps_c, 0.5).tolist() == [0.0, 1.0, -2.0]
    assert esd_target(eps_null, eps_c, 0.0).tolist() == eps_null.tolist()  # η = 0: c looks like ∅


def test_the_erase_loss_regresses_the_erased_class_onto_the_frozen_models_target() -> None:
    task = unlearn_task(eta=2.0, erase=4)
    batch = next(task.batches(0))
    xe, xk, yk = batch
    fours = task.data.train.x[task.data.train.y == 4]  # (n, 1, 28, 28)
    assert (xe[:, None] == fours[None]).flatten(2).all(2).any(1).all()  # each one of the training 4s
    assert not (yk == 4).any() and len(xe) == len(xk) == 16
    net, frozen = copy.deepcopy(task.model), task.frozen
    torch.manual_seed(3)
    erase, keep = task.losses(batch)
    torch.manual_seed(3)  # the same draws, by hand: t and ε for the images of 4, then for the others
    x0 = task.signed(xe)
    t = torch.randint(0, task.schedule.T, (16,))
    xt = task.schedule.q_sample(x0, t, torch.randn_like(x0))
    with torch.no_grad():
        e_null = frozen(xt, t, torch.full((16,), 10))
        e_c = frozen(xt, t, torch.full((16,), 4))
        want = F.mse_loss(net(xt, t, torch.full((16,), 4)), e_null - 2.0 * (e_c - e_null))
    assert erase.item() == pytest.approx(want.item(), rel=1e-4)
    assert keep.item() == pytest.approx(0.0, abs=1e-9)  # before any step the copy is the model


def test_fine_tuning_moves_the_model_and_leaves_the_frozen_copy_bitwise_as_it_was() -> None:
    task = unlearn_task()
    frozen = {k: v.clone() for k, v in task.frozen.state_dict().items()}
    start = {k: v.clone() for k, v in task.model.state_dict().items()}
    assert all(torch.equal(frozen[k], start[k]) for k in frozen)
    losses = [task.train_step(b) for b in task.batches(0)]
    assert all(torch.equal(v, frozen[k]) for k, v in task.frozen.state_dict().items())
    moved = [k for k, v in task.model.state_dict().items() if not torch.equal(v, start[k])]
    assert len(moved) == len(start)
    assert losses[-1]["keep"] > 0 and not any(p.requires_grad for p in task.frozen.parameters())
    # only the class embedding, and in it only the erased class's row: the other classes cannot change
    emb = unlearn_task(params="embedding")
    start = {k: v.clone() for k, v in emb.model.state_dict().items()}
    for b in emb.batches(0):
        emb.train_step(b)
    after = emb.model.state_dict()
    assert all(torch.equal(after[k], start[k]) for k in start if k != "class_emb.weight")
    rows = (after["class_emb.weight"] != start["class_emb.weight"]).any(1)
    assert rows.tolist() == [k == 3 for k in range(11)]


def test_a_bad_erase_is_one_sentence_and_exit_2(dlc) -> None:
    r = dlc("run", "unlearning", "--set", "erase=12")
    assert r.code == 2
    assert r.err.strip() == "dlc: task.erase=12 is out of range: allowed 0 … 9."
    assert list_runs() == []  # nothing trained first, nothing written


def test_it_builds_on_a_diffusion_run_with_the_null_class_and_starts_from_its_weight_average(dlc) -> None:
    from dlcourse_tui.engine.upstream import resolve_upstream

    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    r = dlc("run", "diffusion", *sets, "--epochs", "1", "--set", "quality_samples=10", "--set", "label_dropout=0.1",
            "--set", "null_class=true", "--json")
    assert r.code == 0, r.err
    up = json.loads(r.out)["run_id"]
    lesson = find_lesson("unlearning")
    config, missing = resolve_upstream(tiny("unlearning", steps=2, judge_per_class=2, sample_steps=4), lesson.needs)
    assert missing == [] and config.upstream == {"diffusion": up}
    task = prepare_run(config).task
    assert task.built_on == up
    ema = torch.load(find_run(up).checkpoint, weights_only=True)["task"]["modules"]["ema"]
    assert all(torch.equal(v, ema[f"model.{k}"]) for k, v in task.frozen.state_dict().items())
    assert all(torch.equal(v, ema[f"model.{k}"]) for k, v in task.model.state_dict().items())


def test_a_resumed_unlearning_run_matches_an_uninterrupted_one() -> None:
    from helpers import assert_same_modules, final_task_state, stopped_and_resumed

    cfg = find_lesson("unlearning").config(sets=[f"{k}={v}" for k, v in {**TINY, "steps": 4, "judge_per_class": 2,
                                                                           "sample_steps": 4, "log_every": 1}.items()],
                                           overrides={"train.epochs": 2})
    full, resumed, final = stopped_and_resumed(cfg, stop_after_step=3)
    a, b = final_task_state(full), final_task_state(resumed)
    assert set(a["modules"]) == {"model", "frozen"}
    assert_same_modules(a, b)
    numbers = [{k: v for k, v in json.loads((r.path / "summary.json").read_text())["metrics"].items()
                if k != "val_sample_seconds"} for r in (resumed, full)]
    assert numbers[0] == numbers[1] and "val_erased_match" in numbers[0]
