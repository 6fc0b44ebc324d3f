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
    """One thread unless told: no steps timed to choose (session.choose_threads), so a test
    can count the calls to train_step."""
    s = [f"{k}={v}" for k, v in {"n_train": 96, "n_val": 64, "batch_size": 16, "log_every": 2, "threads": 1,
                                 **sets}.items()]
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
    summary = json.loads((store.path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["step"] == final.step == 5  # as the sentence says


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
    assert isinstance(final, RunFailed) and final.step == 3  # the step the message names
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


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_a_finished_one_cycle_run_given_more_epochs_runs_a_new_cycle_over_them() -> None:
    cfg = tiny_config(epochs=1, schedule="onecycle", lr=0.5)
    store, first, _ = run_to_end(cfg)
    before = _files(store.path)
    lrs: list[float] = []
    from dlcourse_tui.tasks.classify import ClassifyTask

    real = ClassifyTask.train_step

    def spy(self, batch):
        lrs.append(self.optimizer.param_groups[0]["lr"])
        return real(self, batch)

    ClassifyTask.train_step = spy
    try:
        resumed, final, _ = run_to_end(cfg, resume=find_run(store.id), epochs=3)
    finally:
        ClassifyTask.train_step = real
    assert final.status == "completed" and final.epoch == 3 and final.step == 3 * first.step
    assert json.loads((resumed.path / "summary.json").read_text())["status"] == "completed"
    assert len(lrs) == 2 * first.step
    peak = lrs.index(max(lrs))
    assert 0 < peak < len(lrs) - 1 and lrs[0] < max(lrs) / 5 and lrs[-1] < max(lrs) / 100  # up, then down again
    assert abs(max(lrs) - 0.5) < 0.05
    assert before.keys() <= _files(store.path).keys()


def test_a_one_cycle_run_stopped_midway_is_not_stretched_and_its_folder_is_untouched() -> None:
    from dlcourse_tui.engine.session import prepare_run
    from dlcourse_tui.errors import UserError

    cfg = tiny_config(epochs=2, schedule="onecycle")
    store, stopped, _ = run_to_end(cfg, stop_after_step=3)
    assert stopped.status == "stopped"
    before = _files(store.path)
    with pytest.raises(UserError, match=r"stopped at epoch 1 of the 2 its onecycle learning-rate schedule spans; "
                                        r"resume it without --epochs"):
        prepare_run(cfg, resume=find_run(store.id), epochs=4)
    assert _files(store.path) == before
    _, final, _ = run_to_end(cfg, resume=find_run(store.id))  # finishing the cycle works
    assert final.status == "completed"


@pytest.mark.parametrize("damage", ["another model's weights", "other shapes", "no trainer part"])
def test_a_checkpoint_that_loads_but_does_not_fit_is_refused_before_the_folder_changes(dlc, damage) -> None:
    size = ["--set", "n_train=100", "--set", "n_val=16", "--set", "batch_size=50"]
    lesson, other = {"another model's weights": ("linear", ["--model", "mlp"]),
                     "other shapes": ("mlp", ["--set", "hidden=32"]),
                     "no trainer part": ("mlp", [])}[damage]
    a = json.loads(dlc("run", lesson, *size, "--epochs", "2", "--json").out)
    run_dir = find_run(a["run_id"]).path
    if damage == "no trainer part":
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
        del state["trainer"]
        torch.save(state, run_dir / "checkpoint.pt")
    else:
        b = json.loads(dlc("run", lesson, *size, "--epochs", "1", *other, "--json").out)
        (run_dir / "checkpoint.pt").write_bytes((find_run(b["run_id"]).path / "checkpoint.pt").read_bytes())
    before = _files(run_dir)
    r = dlc("run", lesson, "--resume", a["run_id"], "--epochs", "4")
    assert r.code == 2, r.err
    assert "cannot be resumed" in r.err and "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1
    assert ("does not fit run" in r.err) == (damage != "no trainer part"), r.err
    assert _files(run_dir) == before  # metrics.jsonl not truncated, summary still 'completed'


def test_a_foreign_pickle_is_refused_without_a_torch_warning(tmp_path, capfd) -> None:
    import pickle

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"format": 1, "weights": [1, 2, 3]}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert capfd.readouterr().err == ""


def test_runs_started_at_once_each_get_their_own_folder(tmp_path) -> None:
    import threading

    from dlcourse_tui.engine.runs import RunStore

    barrier = threading.Barrier(8)
    made, errors = [], []

    def start() -> None:
        barrier.wait()
        try:
            made.append(RunStore.create({"lesson": "l", "model": {"name": "m"}}, tmp_path).path)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(made)) == 8


def test_logged_means_weigh_each_step_by_its_examples() -> None:
    """100 examples in batches of 32: the last batch holds 4, and counts for 4, not 32."""
    from dlcourse_tui.tasks.classify import ClassifyTask

    real = ClassifyTask.train_step

    def constant(self, batch):  # loss = the batch's size, so the weighted mean is known exactly
        real(self, batch)
        n = torch.tensor(float(len(batch[1])))
        return {"loss": n, "acc": n}

    ClassifyTask.train_step = constant
    try:
        _, _, events = run_to_end(tiny_config(epochs=1, n_train=100, batch_size=32, log_every=4))
    finally:
        ClassifyTask.train_step = real
    [window] = [e for e in events if isinstance(e, StepEnded)]
    [epoch] = [e for e in events if isinstance(e, EpochEnded)]
    expected = (3 * 32 * 32 + 4 * 4) / 100  # Σ n·loss / Σ n, not (32 + 32 + 32 + 4) / 4
    assert window.metrics["loss"] == pytest.approx(expected)
    assert epoch.metrics["train_loss"] == pytest.approx(expected)


def test_the_faster_thread_count_is_kept_and_the_timings_are_the_reason(monkeypatch) -> None:
    import time as clock

    from dlcourse_tui.engine import threads

    cost = {1: 0.004, 2: 0.001}  # seconds a step takes on n threads, as a fake step sleeps them
    choice = threads.measure_threads(lambda: clock.sleep(cost[torch.get_num_threads()]), options=(1, 2))
    assert choice.threads == 2 and choice.reason.startswith("2 (timed ") and "1 → 4." in choice.reason
    cost.update({1: 0.001, 2: 0.004})
    assert threads.measure_threads(lambda: clock.sleep(cost[torch.get_num_threads()]), options=(1, 2)).threads == 1
    assert threads.measure_threads(lambda: None, options=(1,)).reason == "1 (the only choice here)"


def test_timing_the_threads_leaves_no_trace_and_a_resumed_run_keeps_its_choice(monkeypatch) -> None:
    from dlcourse_tui.engine import session

    monkeypatch.delenv("DLC_THREADS")
    seen = []
    real = session.measure_threads

    def measured(step, options=(1, 2)):
        seen.append(options)
        return real(step, options=(1, 2))

    monkeypatch.setattr(session, "measure_threads", measured)
    cfg = tiny_config(epochs=2, threads=0)
    auto, _, events = run_to_end(cfg)
    assert seen and "timed" in events[0].threads
    chosen = load_checkpoint(auto.path / "checkpoint.pt")["trainer"]["threads"]
    fixed, _, fixed_events = run_to_end(tiny_config(epochs=2, threads=chosen))
    assert fixed_events[0].threads == f"{chosen} (set by train.threads)"
    assert metric_numbers(auto) == metric_numbers(fixed)  # the timed steps were undone
    seen.clear()
    cut, _, _ = run_to_end(cfg, stop_after_step=4)
    _, _, resumed = run_to_end(cfg, resume=find_run(cut.id))
    assert len(seen) == 1 and resumed[0].threads.endswith("(as the run had before it stopped)")


def test_dlc_threads_fixes_every_runs_threads_and_a_bad_value_is_one_sentence(monkeypatch) -> None:
    from dlcourse_tui.engine.session import prepare_run
    from dlcourse_tui.errors import UserError

    monkeypatch.setenv("DLC_THREADS", "2")
    assert prepare_run(tiny_config(threads=0)).threads.reason == "2 (set by DLC_THREADS)"
    assert prepare_run(tiny_config(threads=1)).threads.reason == "1 (set by train.threads)"  # the run's own wins
    monkeypatch.setenv("DLC_THREADS", "two")
    with pytest.raises(UserError, match="DLC_THREADS='two': give a number of CPU threads"):
        prepare_run(tiny_config(threads=0))
