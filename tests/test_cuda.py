"""The same runs on a CUDA GPU: skipped without one; bench/gpu_check.sh runs them there.

No GPU has run this project in its test suite yet: these check what only a GPU can break
(tensors left on the wrong device, the GPU's random stream in checkpoints and in the
judge, bf16 autocast, a checkpoint written on a GPU resumed on a CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from dlcourse_tui.engine.checkpoint import load_checkpoint
from dlcourse_tui.engine.runs import find_run
from dlcourse_tui.lessons import load_lessons
from helpers import metric_numbers, run_to_end

pytestmark = pytest.mark.cuda

TINY = ["n_train=100", "n_val=16", "batch_size=16", "log_every=1"]


@pytest.mark.parametrize("lesson", load_lessons(), ids=lambda l: l.id)
def test_every_lesson_runs_on_the_gpu(lesson) -> None:
    cfg = lesson.config(sets=TINY, overrides={"train.epochs": 1, "train.device": "cuda"})
    store, final, events = run_to_end(cfg, stop_after_step=3)
    assert final.status == "stopped" and final.step == 3, getattr(final, "message", "")
    assert events[0].device.startswith("cuda")
    assert json.loads((store.path / "summary.json").read_text())["device"].startswith("cuda")


@pytest.mark.parametrize("lesson", ["training-techniques", "gan", "diffusion"])
def test_a_gpu_run_resumes_exactly(lesson) -> None:
    from dlcourse_tui.lessons import find_lesson

    cfg = find_lesson(lesson).config(sets=TINY, overrides={"train.epochs": 2, "train.device": "cuda"})
    full, _, _ = run_to_end(cfg)
    cut, stopped, _ = run_to_end(cfg, stop_after_step=9)
    assert stopped.status == "stopped"
    resumed, final, _ = run_to_end(cfg, resume=find_run(cut.id))
    assert final.status == "completed"
    drop = ("time", "val_sample_seconds")
    strip = [{k: v for k, v in m.items() if k not in drop} for m in metric_numbers(full)]
    assert [{k: v for k, v in m.items() if k not in drop} for m in metric_numbers(resumed)] == strip
    a = load_checkpoint(full.path / "checkpoint.pt")["task"]["modules"]
    b = load_checkpoint(resumed.path / "checkpoint.pt")["task"]["modules"]
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)


def test_the_judge_leaves_the_gpus_random_stream_alone() -> None:
    from dlcourse_tui.data import load_dataset
    from dlcourse_tui.tasks.generate import Judge

    data = load_dataset("digits", seed=0, args={"n_train": 200, "n_val": 50}).to(torch.device("cuda"))
    before = torch.cuda.get_rng_state(), torch.get_rng_state()
    Judge.for_dataset(data, torch.device("cuda"))
    assert torch.equal(torch.cuda.get_rng_state(), before[0]) and torch.equal(torch.get_rng_state(), before[1])


def test_a_checkpoint_written_on_the_gpu_resumes_on_the_cpu() -> None:
    from dlcourse_tui.lessons import find_lesson

    cfg = find_lesson("convolutional-networks").config(sets=TINY, overrides={"train.epochs": 2, "train.device": "cuda"})
    cut, _, _ = run_to_end(cfg, stop_after_step=3)
    record = find_run(cut.id)
    from dataclasses import replace

    on_cpu = replace(cfg, train=replace(cfg.train, device="cpu"))
    _, final, events = run_to_end(on_cpu, resume=record)
    assert final.status == "completed" and events[0].device == "cpu"


def test_resnet_fast_trains_under_bf16_autocast() -> None:
    from dlcourse_tui.lessons import find_lesson

    cfg = find_lesson("training-techniques").config(sets=TINY, overrides={"train.epochs": 1, "train.device": "cuda",
                                                                            "model.name": "resnet_fast"})
    _, final, _ = run_to_end(cfg)
    assert final.status == "completed" and final.metrics["train_loss"] == final.metrics["train_loss"]
