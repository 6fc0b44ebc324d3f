"""A resumed run equals the uninterrupted one, for every kind of task and lesson.

Each case trains a tiny config for 3 epochs without a break, and again stopped after
some step; the stopped runs are then resumed in a new interpreter through the CLI's entry
point (`dlc run LESSON --resume ID`), as a learner resumes one the next day. A new
process matters: there the global random stream stands elsewhere when things are built,
so anything a run builds outside its checkpoint (the judge of the generative tasks, say)
that draws from, or depends on, that stream shows here, where an in-process resume that
happens to build things at the same moments may hide it.

The two runs must agree exactly: every number of metrics.jsonl (but wall-clock times),
every tensor of the final checkpoint's task state (modules bitwise, optimisers, schedules,
the augmenter's generator), and the random state left at the end (the same draws taken).
Stops fall mid-epoch before any evaluation, mid-epoch after one, and at an epoch boundary.
Three epochs, not two: a thing built lazily at an evaluation (the judge) is built by the
resumed process one evaluation later than by the uninterrupted one, and only training
after that shows a draw it took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from dlcourse_tui.data.digits import digits_dataset
from dlcourse_tui.lessons import find_lesson
from dlcourse_tui.tasks.generate import Judge
from helpers import run_to_end

EPOCHS = 3
CLOCKED = {"time", "val_sample_seconds"}  # wall-clock numbers: the only ones a resumed run may not repeat
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    lesson: str
    sets: dict[str, Any]
    variant: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    def config(self):
        # one thread, set: a run that times its threads may pick another count than its twin, and
        # float sums split over 2 threads differ in the last bits (a resumed run keeps its own count)
        sets = [f"{k}={v}" for k, v in {"log_every": 1, "threads": 1, **self.sets}.items()]
        return find_lesson(self.lesson).config(variant=self.variant, sets=sets, overrides={
            "train.epochs": EPOCHS, "train.device": "cpu", **self.overrides})  # cpu: bitwise on every machine


CLASSIFY = {"n_train": 100, "n_val": 32, "batch_size": 16}  # 7 steps an epoch, the last of 4 (100: the lessons' least)
IMAGES = {"n_train": 64, "n_val": 32, "batch_size": 16}  # 4 steps an epoch
SMALL_CNN = {"model.channels": [4, 8]}
SCENES = {"n_train": 100, "n_val": 8, "size": 16, "batch_size": 34, "speed_table": "false"}  # 3 steps an epoch
WORDS = {k: v for k, v in SCENES.items() if k != "speed_table"}  # scenes with captions: no speed table to skip
CASES = {
    "linear-classifier": Case("linear-classifier", CLASSIFY),
    "techniques-augment": Case("training-techniques", {**CLASSIFY, "augment": "flip,crop=2,color=0.1,affine=0.25"},
                               overrides=SMALL_CNN),  # the default variant, augmenting
    "techniques-all": Case("training-techniques", CLASSIFY, variant="all", overrides=SMALL_CNN),  # + dropout, batch norm
    "autoencoder": Case("autoencoder", {**IMAGES, "latent": 4, "hidden": 32}),
    "vae": Case("vae", {**IMAGES, "hidden": 32}),
    "gan": Case("gan", {**IMAGES, "quality_samples": 50, "g_channels": 8, "d_channels": 8}),
    "diffusion": Case("diffusion", {**IMAGES, "timesteps": 8, "quality_samples": 20, "picture_samples": 10,
                                    "quality_every": 1, "channels": 8}),
    "segmentation-unet": Case("segmentation", SCENES, overrides={"model.channels": [4, 8], "model.patch": 1}),
    "segmentation-window": Case("segmentation", SCENES, overrides={"model.name": "window_seg", "model.channels": [4, 8],
                                                                   "model.window": 9}),
    "detection-yolo": Case("detection", SCENES, overrides={"model.channels": [4, 8, 8], "model.grid": 4}),
    "detection-rcnn": Case("detection", SCENES, overrides={"model.name": "rcnn", "model.channels": [4, 8, 8, 8],
                                                           "model.hidden": 16}),
    "image-captioning": Case("image-captioning", {**WORDS, "size": 32, "d_model": 16, "heads": 2, "encoder_layers": 1,
                                                   "decoder_layers": 1}),
    "clip": Case("clip", {**WORDS, "n_val": 200, "image_width": 16, "text_width": 16, "embed_dim": 8, "heads": 2,
                          "text_layers": 1}),  # 200: enough scenes of held-out pairs for the probe's two halves
    "blip2-bridge": Case("blip2-bridge", {**WORDS, "size": 32, "lm_epochs": 1, "stage1_epochs": 1}),  # a phase an epoch
    "peft": Case("peft", {**CLASSIFY, "n_val": 32}),  # on a random ViT: no vision-transformer run to build on
}
STEPS_PER_EPOCH = {name: -(-case.sets["n_train"] // case.sets["batch_size"]) for name, case in CASES.items()}

# (case, where it stops): after an evaluation mid-epoch for every case; before any
# evaluation and at an epoch boundary for one of each family
STOPS = [(name, "mid-epoch 2") for name in CASES] + [
    ("linear-classifier", "mid-epoch 1"), ("techniques-augment", "epoch boundary"),
    ("gan", "mid-epoch 1"), ("gan", "epoch boundary"), ("diffusion", "epoch boundary"),
]


def stop_step(name: str, where: str) -> int:
    spe = STEPS_PER_EPOCH[name]
    return {"mid-epoch 1": 3, "epoch boundary": spe, "mid-epoch 2": spe + 2}[where]


# Resumes all the stopped runs, one after another, in one fresh interpreter through the
# CLI's entry point (what `python -m dlcourse_tui.cli run LESSON --resume ID` runs): a
# process per run would cost most of this file's time in importing torch.
RESUME_ALL = """
import json, sys, traceback
from dlcourse_tui.cli.app import main

codes = {}
for lesson, run_id in json.loads(sys.argv[1]):
    print(f"=== resume {run_id}", file=sys.stderr, flush=True)
    sys.argv = ["dlc", "run", lesson, "--resume", run_id]
    try:
        main()
        codes[run_id] = 0
    except SystemExit as e:
        codes[run_id] = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Exception:  # noqa: BLE001 - report it with this run, and go on with the others
        traceback.print_exc()
        codes[run_id] = -1
    print(f"=== done {run_id}", file=sys.stderr, flush=True)
print(json.dumps(codes))
"""


@dataclass
class Pair:
    full: Path  # the uninterrupted run's folder
    resumed: Path  # the stopped, then resumed run's folder
    code: int | None  # the resume's exit code
    log: str  # what the resume wrote to stderr


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Pair]:
    """Stop every (case, stop) run, resume them all in a new process, and meanwhile run each
    case uninterrupted here. Two homes, so each side trains (or loads) its own judge."""
    home_full, home_cut = tmp_path_factory.mktemp("uninterrupted"), tmp_path_factory.mktemp("resumed")
    cuts: dict[tuple[str, str], Path] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DLC_LESSONS", raising=False)
        mp.setenv("NO_COLOR", "1")
        mp.setenv("DLC_HOME", str(home_cut))
        for name, where in STOPS:
            at = stop_step(name, where)
            cut, stopped, _ = run_to_end(CASES[name].config(), stop_after_step=at)
            assert stopped.status == "stopped" and stopped.step == at, (name, where, stopped)
            cuts[name, where] = cut.path
        jobs = [(CASES[name].lesson, path.name) for (name, _), path in cuts.items()]
        proc = subprocess.Popen([sys.executable, "-c", RESUME_ALL, json.dumps(jobs)], cwd=ROOT, env=os.environ.copy(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            mp.setenv("DLC_HOME", str(home_full))
            full = {}
            for name in CASES:  # while the other process imports torch and resumes
                store, final, _ = run_to_end(CASES[name].config())
                assert final.status == "completed" and final.epoch == EPOCHS, (name, final)
                full[name] = store.path
            out, err = proc.communicate(timeout=600)
        finally:
            proc.kill()
    try:
        codes = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        codes = {}
    logs = {run_id: log.split("=== done")[0] for run_id, log in
            (chunk.split("\n", 1) for chunk in err.split("=== resume ")[1:] if "\n" in chunk)}
    return {key: Pair(full[key[0]], path, codes.get(path.name), logs.get(path.name, err[-4000:]))
            for key, path in cuts.items()}


def numbers(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in CLOCKED}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same(a: Any, b: Any, where: str) -> None:
    """Equal nested state: tensors bitwise (torch.equal, same dtype and shape), the rest by ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, sorted(a), sorted(b))
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


@pytest.mark.parametrize(("name", "where"), STOPS, ids=[f"{n}-{w.replace(' ', '-')}" for n, w in STOPS])
def test_a_run_resumed_in_a_new_process_equals_the_uninterrupted_one(pairs, name: str, where: str) -> None:
    pair = pairs[name, where]
    assert pair.code == 0, pair.log[-4000:]
    assert json.loads((pair.resumed / "summary.json").read_text())["status"] == "completed"
    assert numbers(pair.resumed) == numbers(pair.full)
    a = torch.load(pair.full / "checkpoint.pt", weights_only=True)
    b = torch.load(pair.resumed / "checkpoint.pt", weights_only=True)
    assert a["task"]["modules"].keys() == b["task"]["modules"].keys()
    for module, tensors in a["task"]["modules"].items():  # the final parameters and buffers, bitwise
        for k, v in tensors.items():
            assert torch.equal(v, b["task"]["modules"][module][k]), (module, k)
    assert_same(a["task"], b["task"], "task")  # optimisers, schedules, the augmenter's generator too
    assert_same(a["rng"], b["rng"], "rng")  # and the same draws taken from the run's own random stream
    for key in ("step", "epoch", "batch"):
        assert a["trainer"][key] == b["trainer"][key], key


def test_building_the_judge_neither_draws_from_nor_depends_on_the_global_random_stream(tmp_path, monkeypatch) -> None:
    """The judge is not part of a run's checkpoint, so it must leave the run's stream alone
    (a draw there shifts every later step of a resumed run) and come out the same from
    wherever that stream stands (its cache is keyed by the data alone)."""
    data = digits_dataset(n_train=64, n_val=32, seed=0)
    nets = []
    for seed in (1, 2):
        monkeypatch.setenv("DLC_HOME", str(tmp_path / f"home-{seed}"))  # an empty cache: built and trained anew
        torch.manual_seed(seed)
        before = torch.get_rng_state()
        nets.append(Judge.for_dataset(data, torch.device("cpu")).net)
        assert torch.equal(torch.get_rng_state(), before)
    for (k, a), b in zip(nets[0].state_dict().items(), nets[1].state_dict().values()):
        assert torch.equal(a, b), k
