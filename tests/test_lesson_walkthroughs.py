"""The built-in lessons' walkthroughs: every lesson passes `dlc lesson check`'s checks with
4 to 8 steps, and one lesson (single-neuron) is walked end to end headless through `dlc
tutorial` with real tiny runs: each step ticks on the run that does it and not before,
a prediction asked by `dlc run --predict` is marked against what the run showed, and the
last step, a picture, waits for the app."""

from __future__ import annotations

import json
import sys

import pytest

from dlcourse_tui.course.check import check_lesson
from dlcourse_tui.lessons import builtin_lessons_dir, load_lessons

# the chapter 1-3 lessons have their walkthroughs; later lessons must have one once they
# have any block (until then they are skipped, by name)
WALKED = ("linear-classifier", "single-neuron", "mlp-backprop", "convolutional-networks", "training-techniques",
          "autoencoder", "vae", "gan", "diffusion", "self-supervised",
          "recurrent-networks", "transformer", "vision-transformer",
          "segmentation", "detection", "image-captioning", "clip", "blip2-bridge", "peft", "knowledge-editing",
          "unlearning")


def builtin_lessons():
    root = builtin_lessons_dir().resolve()
    return [lesson for lesson in load_lessons() if lesson.folder.resolve().parent == root]


@pytest.mark.parametrize("lesson", builtin_lessons(), ids=lambda lesson: lesson.id)
def test_every_built_in_lesson_has_a_walkthrough_that_checks(lesson) -> None:
    report = check_lesson(lesson)
    if report.steps == report.questions == 0 and lesson.id not in WALKED:
        pytest.skip(f"{lesson.id} has no walkthrough yet (issue #12)")
    assert report.problems == (), "\n".join(report.problems)
    assert 4 <= report.steps <= 8, f"{lesson.id}: {report.steps} steps"
    assert report.questions >= 1


def test_the_lessons_of_chapters_1_to_3_are_all_walked() -> None:
    assert set(WALKED) <= {lesson.id for lesson in builtin_lessons()}


TINY = ["--set", "n_train=40", "--set", "n_val=40", "--set", "threads=1", "--epochs", "3"]


def test_single_neuron_walked_headless_through_dlc_tutorial(dlc, monkeypatch) -> None:
    """Each run a step asks for ticks that step, and only that one (the conditions look at
    the run store, not at the sizes, so every run is tiny)."""
    import typer

    def state() -> dict:
        r = dlc("tutorial", "single-neuron", "--json")
        assert r.code == 0, r.err
        return json.loads(r.out)

    def done() -> list[str]:
        return [s["id"] for s in state()["steps"] if s["state"] == "done"]

    r = dlc("tutorial", "single-neuron")
    assert r.code == 0, r.err
    assert "→ 1. Run the experiment as it is" in r.out and "run: dlc run single-neuron" in r.out
    assert done() == []

    runs = [  # (the step it does, the run's arguments)
        ("blobs", []),
        ("xor-line", ["--set", "data.name=xor"]),
        ("xor-degree2", ["--set", "data.name=xor", "--set", "degree=2"]),
        ("overfit", ["--variant", "overfit", "--set", "eval_every=1", "--set", "log_every=1"]),
        ("regularised", ["--variant", "regularised", "--set", "eval_every=1", "--set", "log_every=1"]),
        ("huge-decay", ["--variant", "overfit", "--set", "weight_decay=1", "--set", "eval_every=1"]),
        ("more-data", ["--variant", "overfit", "--set", "eval_every=1", "--set", "batch_size=400"]),
    ]
    ids = [s["id"] for s in state()["steps"]]
    assert ids[:len(runs)] == [step for step, _ in runs] and ids[len(runs):] == ["boundary"]
    for n, (step, args) in enumerate(runs):
        sets = TINY if step != "more-data" else ["--set", "n_train=400", *TINY[2:]]
        if step == "xor-line":  # a prediction asked on a terminal before the run, marked after it
            monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
            monkeypatch.setattr(typer, "prompt", lambda *a, **k: "near 50%")
            r = dlc("run", "single-neuron", *args, *sets, "--predict")
            monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
            assert r.code == 0, r.err
            assert "Predict: A degree-1 neuron on xor" in r.err
            assert "you said 'near 50%': right" in r.out and "your run showed: near 50% (as the answer says)" in r.out
        else:
            r = dlc("run", "single-neuron", *args, *sets)
            assert r.code == 0, r.err
        r = dlc("tutorial", "single-neuron")
        assert f"✓ {n + 1}." in r.out and "(just now)" in r.out and "notice:" in r.out, r.out
        assert done() == [s for s, _ in runs[:n + 1]], (step, r.out)

    s = state()
    assert s["current"] == "boundary" and s["steps"][-1]["needs_app"] and not s["finished"]
    assert "this step is done in the app" in dlc("tutorial", "single-neuron").out
    answers = {q["id"]: q for q in s["questions"]}
    assert answers["xor-line-acc"]["right"] is True and answers["xor-line-acc"]["observed"] == "near 50%"

    from dlcourse_tui.course.walkthrough import Walkthrough
    from dlcourse_tui.lessons import find_lesson

    assert Walkthrough(find_lesson("single-neuron")).record(picture="boundary") == ["boundary"]  # as the app does
    assert state()["finished"] and "All steps done." in dlc("tutorial", "single-neuron").out
