"""The trainer as its front ends see it: events, curves, resume, failures, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from dlcourse_tui.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dlcourse_tui.engine.events import (
    EpochEnded, Evaluated, PictureReady, RunFailed, RunFinished, RunStarted, StepEnded, TableReady,
)
from dlcourse_tui.engine.runs import find_run
from helpers import metric_numbers, run_to_end
from dlcourse_tui.lessons import find_lesson


def tiny_config(lesson: str = "single-neuron", epochs: int = 3, **sets: object):
    s = [f"{k}={v}" for k, v in {"n_train": 96, "n_val": 64, "batch_size": 16, "log_every": 2, **sets}.items()]
    return find_lesson(lesson).config(sets=s, overrides={"train.epochs": epochs})


def test_events_come_in_order_and_the_run_store_matches_them() -> None:
    store, final, events = run_to_end(tiny_config(epochs=2))
    kinds = [type(e) for e in events]
    assert kinds[0] is RunStarted and kinds[-1] is RunFinished
    assert final.status == "completed" and final.epoch == 2 and final.step == 2 * 6
    first_epoch_end = kinds.index(EpochEnded)
    assert StepEnded in kinds[:first_epoch_end]
    assert kinds[first_epoch_end + 1] is Evaluated and kinds[first_epoch_end + 2] is PictureReady
    steps = [e.step for e in events if isinstance(e, StepEnded)]
    assert steps == [2, 4, 6, 8, 10, 12]
    lines = [json.loads(l) for l in (store.path / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines if l["type"] == "step"] == steps
    summary = json.loads((store.path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["metrics"]["val_acc"] == final.metrics["val_acc"]
    assert (store.path / "pictures" / "boundary.png").is_file()
    assert (store.path / "checkpoint.pt").is_file()


def test_a_resumed_run_continues_the_uninterrupted_curve_exactly() -> None:
    cfg = tiny_config(epochs=3, weight_decay=0.01)
    full, _, _ = run_to_end(cfg)
    cut, stopped, _ = run_to_end(cfg, stop_after_step=7)  # mid-epoch 2, mid log window
    assert stopped.status == "stopped" and stopped.step == 8
    record = find_run(cut.id)
    assert record.status == "stopped"
    resumed_store, final, events = run_to_end(cfg, resume=record)
    assert isinstance(events[0], RunStarted) and events[0].resumed and events[0].start_step == 8
    assert final.status == "completed" and final.step == 18
    assert metric_numbers(resumed_store) == metric_numbers(full)
    a = load_checkpoint(full.path / "checkpoint.pt")["task"]["modules"]["model"]
    b = load_checkpoint(resumed_store.path / "checkpoint.pt")["task"]["modules"]["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_with_more_epochs_extends_a_finished_run() -> None:
    store, _, _ = run_to_end(tiny_config(epochs=1))
    _, final, _ = run_to_end(tiny_config(epochs=1), resume=find_run(store.id), epochs=2)
    assert final.status == "completed" and final.epoch == 2


def test_a_diverging_loss_fails_with_the_step_and_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from dlcourse_tui.tasks.classify import ClassifyTask

    real = ClassifyTask.train_step
    calls = {"n": 0}

    def diverging(self, batch):  # a real step, whose loss turns to inf at step 5 (as if the weights blew up)
        calls["n"] += 1
        metrics = real(self, batch)
        return {**metrics, "loss": metrics["loss"] * (float("inf") if calls["n"] >= 5 else 1.0)}

    monkeypatch.setattr(ClassifyTask, "train_step", diverging)
    store, final, events = run_to_end(tiny_config(epochs=3, lr=0.5))
    assert isinstance(final, RunFailed)
    assert final.message.startswith("The training loss became inf at step 5 (epoch 1)")
    assert "--set lr=0.05 (it was 0.5)" in final.message
    assert not any(isinstance(e, StepEnded) and e.step >= 5 for e in events)
    assert json.loads((store.path / "summary.json").read_text())["status"] == "failed"


def test_an_exception_in_a_step_fails_the_run_and_saves_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from dlcourse_tui.tasks.classify import ClassifyTask

    calls = {"n": 0}
    real = ClassifyTask.train_step

    def flaky(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("boom in step three")
        return real(self, batch)

    monkeypatch.setattr(ClassifyTask, "train_step", flaky)
    store, final, _ = run_to_end(tiny_config())
    assert isinstance(final, RunFailed) and final.step == 2
    assert "The run failed at step 3: ValueError: boom in step three" in final.message
    assert "boom in step three" in (store.path / "traceback.txt").read_text()


def test_gradient_check_table_shows_hand_written_backprop_matches_autograd() -> None:
    cfg = find_lesson("mlp-backprop").config(sets=["n_train=64", "n_val=32"], overrides={"train.epochs": 1})
    _, _, events = run_to_end(cfg)
    tables = [e for e in events if isinstance(e, TableReady)]
    assert len(tables) == 1 and len(tables[0].rows) == 6
    for name, _shape, _max, rel, check in tables[0].rows:
        assert float(rel) < 1e-10 and check == "ok", name


def test_hand_written_backprop_would_catch_a_bug() -> None:
    from dlcourse_tui.models.registry import create_model

    model = create_model("mlp", input_shape=(2,), num_classes=2, args={"hidden": 8}).double()
    x, y = torch.randn(16, 2, dtype=torch.float64), torch.randint(0, 2, (16,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    manual = model.manual_gradients(x, y)
    assert torch.allclose(manual["fc1.weight"], model.fc1.weight.grad)
    assert not torch.allclose(manual["fc1.weight"] * 1.01, model.fc1.weight.grad)


def test_checkpoints_are_atomic_and_a_truncated_one_is_refused(tmp_path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"x": torch.arange(1000)}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    assert torch.equal(load_checkpoint(path)["x"], torch.arange(1000))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)


def test_a_checkpoint_holding_code_is_not_executed(tmp_path) -> None:
    import pickle

    class Evil:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / "pwned"),))

    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "evil": Evil()}, path, pickle_module=pickle)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()
